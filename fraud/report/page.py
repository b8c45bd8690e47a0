"""The report page, for a fraud analyst first: the decision in plain words, the money, the
catch per day and per fraud pattern, champion against challenger; then the model details
for the data scientist, the glossary and the run's parameters (folded away).

    html = page(summary, images)      # images: figure key -> PNG file name beside the page

``summary`` is the nightly job's report.json (see ``fraud.report``).
"""

from __future__ import annotations

from . import analyst, technical
from .fmt import esc
from .glossary import glossary_html
from .view import RunView

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1040px;margin:0 auto;
 padding:1.2em 1.5em 3em;color:#1d1d1f;line-height:1.45;font-size:15px;overflow-wrap:break-word}
h1{font-size:1.6em;margin:.3em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .4em;border-bottom:1px solid #ddd;
 padding-bottom:.2em}h3{font-size:1.05em;margin:1.2em 0 .3em}
.sub{color:#555;margin-top:0}
.decision{background:#f4f8fc;border:1px solid #c9dcef;border-left:5px solid #1565c0;border-radius:4px;
 padding:.6em 1.1em;margin:1em 0}
.decision p{margin:.5em 0}.decision .policy{font-size:1.1em}
.warn{color:#8a4b00}
code,.v{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
.v{background:#eef1f4;border-radius:3px;padding:0 .25em;white-space:nowrap}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:13.5px;max-width:100%}
caption{text-align:left;color:#555;font-size:.95em;padding-bottom:.3em}
td,th{border-bottom:1px solid #e3e3e3;padding:4px 10px;text-align:right;vertical-align:top}
th{background:#f3f4f6;font-weight:600;vertical-align:bottom}
td:first-child,th:first-child{text-align:left}
tr.total td{font-weight:600;border-top:2px solid #bbb}
tr.apart td{color:#666;font-style:italic}
tr.note td{color:#555;font-size:.92em;text-align:left;border-bottom:none}
a.term{color:inherit;text-decoration:underline dotted #888;text-underline-offset:2px}
img{max-width:100%;height:auto;border:1px solid #eee;display:block;margin:.5em 0}
details{margin:.8em 0;border:1px solid #e3e3e3;border-radius:4px;padding:.3em .8em}
summary{cursor:pointer;font-weight:600}
dl.glossary dt{font-weight:600;margin-top:.7em}dl.glossary dd{margin:.1em 0 0 1.2em}
dl.params{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;font-size:13.5px}
dl.params dt{color:#555}dl.params dd{margin:0}
.placeholder{color:#555;font-style:italic}
"""


def page(summary: dict, images: dict[str, str]) -> str:
    r = RunView(summary)
    body = [analyst.decision(r), analyst.money(r, images), analyst.catch(r, images), analyst.patterns(r),
            analyst.models(r), analyst.drift(), technical.quality(r, images),
            f"<h2 id='glossary'>Glossary</h2>{glossary_html()}", technical.parameters(r)]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Fraud model report {esc(summary.get('run_id', ''))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>")
