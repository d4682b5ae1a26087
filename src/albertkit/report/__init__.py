"""Run logs and the reports written from them (HTML and Markdown with plots)."""

from albertkit.report.render import write_report

__all__ = ["write_report"]
