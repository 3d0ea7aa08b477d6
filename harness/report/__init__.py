"""HTML reports from result rows, and run-to-run comparison.

`build_report(frame, out_dir)` writes a static site (overview, one page per suite, compare page);
`compare_results(a, b)` tells what got faster or slower beyond the noise.
"""

from harness.report.compare import Comparison, compare_results
from harness.report.site import build_report

__all__ = ["Comparison", "build_report", "compare_results"]
