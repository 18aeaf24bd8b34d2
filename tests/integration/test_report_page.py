"""The HTML report in a real browser: headless Chromium opens the page written from a real
fleet's ledger, every chart is drawn with a size, and a screenshot is not blank."""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from PIL import Image

from producers.report_page import gather, write_html
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)"
)
CHARTS = ("cost_over_time", "savings_by_lever", "quality", "latency", "cache", "model_mix")

# Appended to a copy of the page (the page itself runs no script): each chart's drawn size.
MEASURE = """<script>
addEventListener('load', () => {
  const out = {};
  for (const s of document.querySelectorAll('section[data-chart]')) {
    const svg = s.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    out[s.dataset.chart] = [box.width, box.height, svg ? svg.querySelectorAll('path').length : 0];
  }
  const pre = document.createElement('pre'); pre.id = 'measured';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script></body>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@needs_chromium
def test_the_report_page_draws_every_chart_in_chromium(fleet, tmp_path: Path):
    tenant = f"page{uuid.uuid4().hex[:6]}"
    steps = [make_step(tenant=tenant, task_kind=k) for k in ("chat", "plan", "chat", "lookup")]
    results = fleet.wait(fleet.submit_many(steps), timeout=60)
    fleet.record_execution(tenant, "rebooking", steps[0].session_id, succeeded=True)
    ids = {r.step_id for r in results}
    entries = [e for e in fleet.ledger() if e.step_id in ids]
    summary = gather(fleet, entries, fleet.table)
    page = tmp_path / "report.html"
    write_html(summary, page, "tierfleet report")
    text = page.read_text()
    assert "<script" not in text and "http" not in text.split("<svg")[0]  # self-contained

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", MEASURE))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    measured = json.loads(dom.split('<pre id="measured">')[1].split("</pre>")[0])
    for chart in CHARTS:
        width, height, paths = measured[chart]
        assert width > 200 and height > 80 and paths > 3, (chart, measured[chart])

    shot = tmp_path / "report.png"
    chromium("--window-size=1400,2000", f"--screenshot={shot}", page.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 2000)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, bars and areas, not one flat fill
    background = max(colors)[0] / (image.size[0] * image.size[1])
    assert background < 0.9
