"""Who may send what, and when: cadences fitted into the OAuth clients' request budgets.

`planner` fits the jobs' cadences into the budget, `scheduler` runs them, `budget` admits each
request within one client's rate window, and `group` spreads requests over several clients.
`exporter.genesys` only speaks the wire; it asks this package for a place before each request.
"""
