"""Everything that speaks HTTP to Genesys Cloud: regions, OAuth, the request budget, retries, paging."""
