"""samples.html: one self-contained page to browse every sample of the compared runs.

Each sample shows its media (an image thumbnail, an audio player, a video frame), the prompt the
model was given, the reference, and per run the raw output, the parsed answer, the scorer's
decision (extracted answer, outcome, how it was decided: rule, prefetch or judge), any error, and
the judge calls made while scoring it (folded: the judge's identity, each try's prompt and reply,
whether it came from the cache, failed or was skipped by the time budget).
Filters: suite, correct / wrong (in the baseline or any run), changed between runs, and text. The
filters also read the URL fragment (`samples.html#suite=MME&outcome=wrong&changed=1`), so a view
can be linked to. Records come from each run's `<suite>/log_samples.jsonl`; prompts and media are
rebuilt from the suite's data through its preset, when the data is still where the run read it.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vita_eval import fsio, registry
from vita_eval.config import RunConfig
from vita_eval.reports.rundir import Run

log = logging.getLogger(__name__)

MAX_SAMPLES = 300  # per suite: the page stays light; the log files hold everything
THUMB_PX = 192
MAX_AUDIO_S = 20.0


def outcome(scoring: dict[str, Any] | None) -> bool | None:
    """Whether the scorer counted the sample right: its 0/1 outcome, or no ASR edit errors; None if unknown."""
    if not scoring:
        return None
    for key in ("correct", "hit", "score"):
        value = scoring.get(key)
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    if all(k in scoring for k in ("S", "D", "I")):
        return (scoring["S"] or 0) + (scoring["D"] or 0) + (scoring["I"] or 0) == 0
    return None


def read_log(suite_dir: Path) -> dict[str, dict[str, Any]]:
    path = suite_dir / "log_samples.jsonl"
    if not path.is_file():
        return {}
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records[str(record["uid"])] = record
    return records


def _jpeg(image: Any) -> str:
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _wav(samples: np.ndarray, rate: int = 16000) -> str:
    pcm = (np.clip(samples[: int(rate * MAX_AUDIO_S)], -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _media_and_prompts(run: Run, suite: str, uids: set[str]) -> dict[str, dict[str, Any]]:
    """uid -> {"prompt", "images", "audio", "video"} rebuilt through the suite's preset; {} without the data."""
    from vita_eval.suites import data_path, get_suite, load_suite_data

    stored = (run.info.get("config") or {})
    try:
        cfg = RunConfig(**{k: v for k, v in stored.items() if k in RunConfig.__dataclass_fields__})
        spec = get_suite(suite)
        data = load_suite_data(spec, data_path(spec, cfg.data_root_path(), cfg.data.get(suite)))
        preset = registry.get("preset", spec.preset)
    except Exception as exc:  # noqa: BLE001 - no data here (another machine): the page shows text only
        log.info("%s: no media for the viewer (%s)", suite, exc)
        return {}
    args = {**spec.preset_args, **cfg.suite_args.get(suite, {}).get("preset_args", {})}
    out: dict[str, dict[str, Any]] = {}
    for sample in data.samples:
        if sample.uid not in uids:
            continue
        try:
            request = preset(sample, spec, args)
        except Exception as exc:  # noqa: BLE001 - a bad sample shows its error, not the page's
            out[sample.uid] = {"prompt": f"(input could not be built: {exc})"}
            continue
        out[sample.uid] = {
            "prompt": request.text,
            "images": [_jpeg(im) for im in request.images[:4]],
            "video": [_jpeg(frame) for frame in request.frames[:: max(1, len(request.frames) // 4)][:4]],
            "audio": _wav(request.audio) if request.audio is not None else None,
            "video_path": sample.fields.get("video_path"),
        }
    return out


def _run_result(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What one run's card row shows of its log record (None: the sample is not in that run)."""
    if record is None:
        return None
    return {**{k: record.get(k) for k in ("raw", "prediction", "scoring", "error")},
            "judge": record.get("judge") or [], "correct": outcome(record.get("scoring"))}


def build_samples(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One entry per (suite, uid) of the baseline run (else of any run), with every run's record."""
    entries: list[dict[str, Any]] = []
    suites = list(dict.fromkeys(name for run in runs for name in run.suites))
    for suite in suites:
        logs = {run.label: read_log(run.path / suite) for run in runs if suite in run.suites}
        uids = list(dict.fromkeys(uid for records in logs.values() for uid in records))
        shown = uids[:MAX_SAMPLES]
        media_run = next(run for run in runs if suite in run.suites)
        media = _media_and_prompts(media_run, suite, set(shown))
        for uid in shown:
            per_run = {label: records.get(uid) for label, records in logs.items()}
            first = next(r for r in per_run.values() if r)
            results = {label: _run_result(r) for label, r in per_run.items()}
            outcomes = [r["correct"] for r in results.values() if r is not None]
            answers = [r["prediction"] for r in results.values() if r is not None]
            entries.append({
                "suite": suite, "uid": uid, "question": first.get("question"), "reference": first.get("reference"),
                "choices": first.get("choices"), **media.get(uid, {}), "runs": results,
                "changed": len(set(outcomes)) > 1 or len(set(map(str, answers))) > 1,
            })
        if len(uids) > MAX_SAMPLES:
            log.info("%s: viewer shows the first %d of %d samples", suite, MAX_SAMPLES, len(uids))
    return entries


STYLE = """body{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}
header{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;z-index:1}
label{margin-right:1em}article{border:1px solid #ddd;border-radius:6px;margin:.8em 0;padding:.6em 1em}
article h3{margin:.2em 0;font-size:14px}.media img{max-height:192px;margin-right:6px;border:1px solid #eee}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.4em;margin:.2em 0;font-size:12px}
table{border-collapse:collapse;font-size:12px;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;
vertical-align:top;text-align:left}.ok{color:#176c2b;font-weight:bold}.bad{color:#b3261e;font-weight:bold}
.changed{background:#fff6d6}details.judge summary{cursor:pointer}.call{margin:.3em 0 .6em}"""

SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const RUNS = DATA.runs, SAMPLES = DATA.samples;
const $ = (id) => document.getElementById(id);
function esc(s) { return String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
function verdict(r) { if (!r) return '<i>not in this run</i>';
  return r.correct === true ? '<span class="ok">correct</span>' : r.correct === false ? '<span class="bad">wrong</span>' : '—'; }
function scoring(r) { if (!r || !r.scoring) return '';
  return Object.entries(r.scoring).map(([k, v]) => esc(k) + ': ' + esc(typeof v === 'object' ? JSON.stringify(v) : v)).join('<br>'); }
function callFlags(c) {
  return (c.cached ? ' · from the cache' : '') + (c.status === 'failed' ? ' · <span class="bad">failed: no reply</span>'
    : c.status === 'skipped' ? ' · <span class="bad">skipped: judge time budget spent</span>' : '');
}
function judgeCalls(calls) {
  if (!calls || !calls.length) return '';
  const who = [...new Set(calls.map(c => c.identity))].map(esc).join(', ');
  const body = calls.map(c => '<div class="call"><b>attempt ' + esc(c.attempt) + '</b> · temperature ' + esc(c.temperature)
    + callFlags(c) + '<div>prompt</div><pre class="judge-prompt">' + esc(c.prompt) + '</pre>'
    + (c.reply == null ? '' : '<div>reply</div><pre class="judge-reply">' + esc(c.reply) + '</pre>') + '</div>').join('');
  return '<details class="judge"><summary>judge: ' + calls.length + (calls.length === 1 ? ' call' : ' calls')
    + ' · ' + who + '</summary>' + body + '</details>';
}
function card(s) {
  const media = (s.images || []).concat(s.video || []).map(src => '<img src="' + src + '" alt="' + esc(s.uid) + '">').join('')
    + (s.audio ? '<audio controls src="' + s.audio + '"></audio>' : '') + (s.video_path ? '<div><code>' + esc(s.video_path) + '</code></div>' : '');
  const choices = s.choices ? Object.entries(s.choices).map(([k, v]) => esc(k) + '. ' + esc(v)).join('<br>') : '';
  const rows = RUNS.map(label => { const r = s.runs[label];
    return '<tr><th>' + esc(label) + '</th><td>' + verdict(r) + '</td><td><pre>' + esc(r ? r.raw : '') + '</pre></td><td>'
      + esc(r ? r.prediction : '') + '</td><td>' + scoring(r) + '</td><td>' + esc(r ? r.error : '') + '</td></tr>'
      + (r && r.judge.length ? '<tr class="judge-row"><td colspan="6">' + judgeCalls(r.judge) + '</td></tr>' : ''); }).join('');
  return '<article class="sample' + (s.changed ? ' changed' : '') + '" data-suite="' + esc(s.suite) + '" data-uid="' + esc(s.uid) + '">'
    + '<h3>' + esc(s.suite) + ' · ' + esc(s.uid) + (s.changed ? ' · changed between runs' : '') + '</h3>'
    + '<div class="media">' + media + '</div>'
    + (s.prompt ? '<div><b>Prompt</b><pre class="prompt">' + esc(s.prompt) + '</pre></div>' : '')
    + (s.question && s.question !== s.prompt ? '<div><b>Question</b><pre>' + esc(s.question) + '</pre></div>' : '')
    + (choices ? '<div><b>Choices</b><br>' + choices + '</div>' : '')
    + '<div><b>Reference</b> <code class="reference">' + esc(s.reference) + '</code></div>'
    + '<table><tr><th>run</th><th>outcome</th><th>raw output</th><th>parsed answer</th><th>scorer decision</th><th>error</th></tr>'
    + rows + '</table></article>';
}
function matches(s, f) {
  if (f.suite && s.suite !== f.suite) return false;
  if (f.changed && !s.changed) return false;
  const outs = RUNS.map(l => s.runs[l] && s.runs[l].correct);
  if (f.outcome === 'correct' && !outs.includes(true)) return false;
  if (f.outcome === 'wrong' && !outs.includes(false)) return false;
  if (f.text && !JSON.stringify(s).toLowerCase().includes(f.text.toLowerCase())) return false;
  return true;
}
function filters() { return {suite: $('suite').value, outcome: $('outcome').value, changed: $('changed').checked, text: $('text').value}; }
function render() {
  const f = filters(), shown = SAMPLES.filter(s => matches(s, f));
  $('list').innerHTML = shown.map(card).join('');
  $('count').textContent = shown.length + ' of ' + SAMPLES.length + ' samples';
  location.replace('#' + new URLSearchParams({suite: f.suite, outcome: f.outcome, changed: f.changed ? '1' : '', text: f.text}).toString());
}
const suites = [...new Set(SAMPLES.map(s => s.suite))];
$('suite').innerHTML = '<option value="">all suites</option>' + suites.map(s => '<option>' + esc(s) + '</option>').join('');
const start = new URLSearchParams(location.hash.slice(1));
$('suite').value = start.get('suite') || ''; $('outcome').value = start.get('outcome') || '';
$('changed').checked = start.get('changed') === '1'; $('text').value = start.get('text') || '';
for (const id of ['suite', 'outcome', 'changed', 'text']) $(id).addEventListener('input', render);
render();
"""


def write_viewer(runs: Sequence[Run], path: Path) -> Path:
    """Write samples.html for these runs (the first is the baseline)."""
    data = {"runs": [run.label for run in runs], "samples": build_samples(runs)}
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    title = html.escape(" vs ".join(run.label for run in runs))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>samples: {title}</title>
<style>{STYLE}</style></head><body><header><b>vita-eval samples</b> · {title} ·
<label>suite <select id="suite"></select></label>
<label>outcome <select id="outcome"><option value="">any</option><option value="correct">correct in some run</option>
<option value="wrong">wrong in some run</option></select></label>
<label><input type="checkbox" id="changed"> changed between runs</label>
<label>text <input id="text" type="search"></label> <span id="count"></span></header>
<main id="list"></main><script type="application/json" id="data">{payload}</script><script>{SCRIPT}</script>
</body></html>
"""
    return fsio.write_text(path, page)
