"""The tools that measure the product: `bench` (cycle cost, scrape load, soak), `scale` (`make bench`),
`chain` (`make bench-chain`), `encodings`, and `chaos` (`make chaos`).

They live apart from the product's code so the exporter never imports them, and apart from each
other: what more than one needs (an exporter's settings against a simulated org, the process's
memory) is in `harness`, so no tool imports a sibling.
"""
