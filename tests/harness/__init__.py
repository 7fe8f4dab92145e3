"""What the tests share, one idea a module, so no test module imports another.

- waiting: `eventually` (real time, the fake clock still) and the tick family (`tick_for`, `tick_until`)
  that moves a fake clock.
- exporter_time: the tick family under a whole exporter, each tick's requests answered and shown.
- scraping: fetching and parsing /metrics, picking samples by label, promtool's verdict on a page.
- simulated_org: settings for an exporter pointed at a simulated org.
- truth: /metrics compared with the simulated org's own state.
- notification_client: a REST client and a socket reader for the simulated Notifications API.
- net: a free loopback port and an OAuth client's Basic header.
- windows: the most requests that started in any sliding window.
"""
