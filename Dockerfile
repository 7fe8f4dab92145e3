# genesys-exporter: a small, non-root image with no build tools in the final stage.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels
USER 10001
EXPOSE 10474
ENV EXPORTER_LISTEN=0.0.0.0:10474 EXPORTER_LOG_FORMAT=json PYTHONUNBUFFERED=1
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:10474/healthz', timeout=2)"]
ENTRYPOINT ["genesys-exporter"]
CMD ["run"]
