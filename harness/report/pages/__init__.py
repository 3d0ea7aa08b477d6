"""One module per report page: `body(site, rows, palette) -> str`, the content above the page's table
of rows. A suite's record (harness.suite.Suite.page) names its page module; site.py adds the navigation,
the failed jobs and every row around it."""
