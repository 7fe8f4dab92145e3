"""A simulated Genesys Cloud org: a live contact-centre model behind the same HTTP API.

It shares no code with `exporter.genesys`: it is an independent reading of the wire format, and the
official SDK's models referee between the two in the contract tests.
"""
