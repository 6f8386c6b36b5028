"""The speed tables of the README and the docs site, rendered from the committed results in
benchmarks/results/*.json, never typed.

Each table sits between ``<!-- speed:NAME:start -->`` and ``<!-- speed:NAME:end -->`` in README.md or a page under
docs/; NAME is a results file's stem, or ``headline``: the README's few key figures, taken from several files. A
missing results file renders as a line saying which command measures it.

Run: .venv/bin/python -m benchmarks.report [--update-docs | --update-readme FILE | --check]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import format_markdown_table
from mnist_models.store.files import replace_between_markers

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
HEADLINE = "headline"


def _ms(figures: dict[str, float], digits: int) -> str:
    return f"{figures['p50_ms']:.{digits}f} / {figures['p95_ms']:.{digits}f} ms"


def render_time_to_99(results: dict[str, Any]) -> str:
    goals, target = results["goals"], results["target"]

    def contender(label: str, summary: dict[str, Any]) -> list[str]:
        return [label, f"{summary['median_train_time_s']:.1f} s", f"{summary['mean_accuracy']:.2%}",
                f"{summary['min_accuracy']:.2%}", "✅" if summary["meets_goals"] else "❌"]

    seeds = results["speedrun"]["summary"]["seeds"]
    rows = [contender(f"`speedrun` (registry recipe), {seeds} seeds", results["speedrun"]["summary"]),
            contender(f"tuomaso/train_mnist_fast's recipe, {seeds} seeds", results["tuomaso"]["summary"])]
    cnn = results["cnn_fast"]
    rows.append(["`cnn`, `--recipe fast` (2 epochs), 1 run", f"{cnn['train_time_s']:.1f} s",
                 f"{cnn['test_accuracy']:.2%}", "", ""])
    reference = results["reference"]
    if reference is not None:
        cell = (f"{reference['time_to_target_s']:.0f} s to {target:.1%}" if reference["reached"]
                else f"{reference['train_s']:.0f} s, {target:.1%} not reached")
        rows.append([f"PyTorch examples' recipe, tested every {reference['eval_every']} batches", cell,
                     f"{reference['best_accuracy']:.2%} best", "", ""])
    table = format_markdown_table(["recipe", "training time (median)", "mean accuracy", "worst seed",
                                   f"≥ {goals['mean_accuracy']:.1%} mean, ≥ {goals['min_accuracy']:.1%} each, "
                                   f"≤ {goals['train_time_s']:.0f} s"], rows)
    text = (f"{table}\n\n`speedrun` trains {results['tuomaso_over_speedrun']:.2f}× sooner than the tuomaso recipe "
            f"measured in the same run")
    if reference is not None and reference["reached"]:
        text += (f", {reference['time_to_target_s'] / results['speedrun']['summary']['median_train_time_s']:.0f}× "
                 f"sooner than the PyTorch example")
    text += "."
    if results["levers"]:
        levers = format_markdown_table(
            ["base", "lever (one change)", "training time (median)", "mean accuracy", "worst seed"],
            [[row["base"], row["lever"], f"{row['median_train_time_s']:.2f} s", f"{row['mean_accuracy']:.2%}",
              f"{row['min_accuracy']:.2%}"] for row in results["levers"]])
        text += f"\n\nThe levers, {results['levers'][0]['seeds']} seed(s) each:\n\n{levers}"
    return text


def render_inference(results: dict[str, Any]) -> str:
    size, evaluation = results["batch_size"], results["evaluation"]

    def before_after(row: dict[str, Any], figures: str, digits: int) -> str:
        return f"{row['before'][figures]['p50_ms']:.{digits}f} → {row[figures]['p50_ms']:.{digits}f} ms"

    table = format_markdown_table(
        ["model", "weights", "1 image (p50, before → after)", f"batch of {size:,} (p50, before → after)",
         "batch speed-up", f"evaluate on {evaluation['test_images']:,}"],
        [[f"`{name}`", row["source"], before_after(row, "single_ms", 2), before_after(row, "batch_ms", 1),
          f"{row['before']['batch_ms']['p50_ms'] / row['batch_ms']['p50_ms']:.1f}×",
          f"{evaluation['seconds'][name]:.1f} s" if name in evaluation["seconds"] else "–"]
         for name, row in results["models"].items()])
    drawing = results["drawing_all_models"]
    return (f"{table}\n\nBefore: the module in PyTorch's default memory format, the whole batch in one forward pass; "
            f"after: channels-last weights and input, in chunks of {results['chunk_size']}; the two timed in turns "
            f"in the same run. Evaluating all {len(evaluation['seconds'])} shipped models on the "
            f"{evaluation['test_images']:,} test images (what `digit-lab evaluate` does, writing aside; its bulk "
            f"passes run on a copy with each batch norm folded into the convolution before it): "
            f"**{evaluation['total_s']:.1f} s** (goal {evaluation['goal_s']:.0f} s).\n\n"
            f"One drawn image, preprocessed and passed through {len(drawing['models'])} models one after "
            f"another (what the Draw page does): **{_ms(drawing['total_ms'], 2)}** (p50 / p95) over "
            f"{drawing['runs']} runs; preprocessing alone {drawing['preprocess_ms']['p50_ms']:.2f} ms (p50).")


def render_training(results: dict[str, Any]) -> str:
    return format_markdown_table(
        ["model", "images/s (median)", "min", "max"],
        [[f"`{name}`", f"{row['median']:,.0f}", f"{row['min']:,.0f}", f"{row['max']:,.0f}"]
         for name, row in results["models"].items()])


def render_distributed(results: dict[str, Any]) -> str:
    baseline = results["setups"][0]["median"]
    table = format_markdown_table(
        ["setup (same global batch)", "images/s (median)", "min", "max", "vs 1 process × 1 thread"],
        [[("`torchrun`, " if row["processes"] > 1 else "") + f"{row['processes']} process(es) × "
          f"{row['threads_per_process']} thread(s)", f"{row['median']:,.0f}", f"{row['min']:,.0f}",
          f"{row['max']:,.0f}", f"{row['median'] / baseline:.2f}×"] for row in results["setups"]])
    return (f"{table}\n\n`{results['model']}`'s recipe (global batch {results['setups'][0]['batch_size']}), one epoch "
            f"on {results['train_subset']:,} images after a warm-up, the setups launched in turns, "
            f"{results['repeats']} round(s); training steps only, over all ranks. CUDA with NCCL: not measured, no GPU "
            f"here.")


def render_dashboard(results: dict[str, Any]) -> str:
    update = results["canvas_update_ms"]
    loads = results["first_load"]
    overview = statistics.median(figures["overview_s"] for figures in loads.values())
    rows = [[f"first run of {Path(page).stem.removesuffix('_page').title()} (after the Overview run)",
             f"{figures['page_s']:.2f} s"] for page, figures in loads.items()]
    return format_markdown_table(["server-side step", "time"], [
        ["canvas update → all predictions rendered (p50 / p95, "
         f"{update['runs']} strokes)", _ms(update, 0)],
        ["first Overview run in a fresh process (median of the page runs below)", f"{overview:.2f} s"],
        *rows])


def render_train_page(results: dict[str, Any]) -> str:
    runs = results["runs"]
    rows = [[mode, ", ".join(f"{seconds:.1f}" for seconds in figures["train_s"]),
             f"{figures['median_images_per_s']:,.0f}"] for mode, figures in runs.items()]
    poll = results["poll_ms"]
    return (f"{format_markdown_table(['mode', 'training s', 'median images/s'], rows)}\n\n"
            f"Watched over alone: **{results['watched_over_alone']:.2f}**; each poll reruns the page on the server in "
            f"{_ms(poll, 0)} (p50 / p95) over {results['polls']} polls.")


def render_load(results: dict[str, Any]) -> str:
    return format_markdown_table(
        ["visitors drawing", "while training", "drawings answered", "browser: mouse-up → answers (p50 / p95)",
         "server: Draw run (p50 / p95)", "lost drawings", "wiped selections", "exceptions", "server peak RSS"],
        [[phase["visitors"], "yes" if phase["training"] else "no", phase["drawings_answered"],
          f"{phase['browser_p50_ms']:,.0f} / {phase['browser_p95_ms']:,.0f} ms",
          f"{phase['server_p50_ms']:,.0f} / {phase['server_p95_ms']:,.0f} ms", phase["lost_drawings"],
          phase["wiped_selections"], phase["exceptions"], f"{phase['peak_rss_mb']:,} MB"]
         for phase in results["phases"]])


def render_viewers(results: dict[str, Any]) -> str:
    table = format_markdown_table(
        ["sessions open", "server RSS: loaded / after drawing", "drawings answered (lost), in", "browser: mouse-up → "
         "answers (p50 / p95)", "mouse-up → last message in (p50)", "rendering after the last (p50)",
         "server: Draw run (p50 / p95)", "load average (1 min)"],
        [[phase["sessions"], f"{phase['rss_open_mb']:,} / {phase['rss_after_drawing_mb']:,} MB",
          f"{phase['drawings'] - phase['lost']} ({phase['lost']}), {phase['drawing_s']:.0f} s",
          f"{phase['p50_ms']:,.0f} / {phase['p95_ms']:,.0f} ms", f"{phase['median_last_message_ms']:,.0f} ms",
          f"{phase['median_render_ms']:,.0f} ms", f"{phase['server_run_p50_ms']:,.0f} / "
          f"{phase['server_run_p95_ms']:,.0f} ms", f"{phase['load_average_1']:.1f}"]
         for phase in results["phases"]])
    return (f"{table}\n\nThe server process with no session: {results['baseline_rss_mb']:,} MB (and "
            f"{results['children_rss_mb']:,} MB in its training fork server). Per session (least-squares slope): "
            f"**{results['mb_per_session_open']:.1f} MB** with the Draw page loaded, "
            f"**{results['mb_per_session_after_drawing']:.1f} MB** after drawing. Every open session draws at once, "
            f"up to {results['drawings_per_session']} drawings each, none begun after {results['seconds']:.0f} s.")


def render_decode(results: dict[str, Any]) -> str:
    return format_markdown_table(
        ["upload", "at once", "file", "memory added while decoding", "seconds"],
        [[case["case"], case["copies"], f"{case['file_bytes'] / 1024:,.0f} KB", f"{case['added_mib']:,.0f} MiB",
          f"{case['seconds']:.2f}"] for case in results["cases"]]) + (
        f"\n\nBudget for one accepted upload: {results['budget_mib']} MiB; each case runs in a fresh process.")


def render_no_digit(results: dict[str, Any]) -> str:
    rows = []
    for group in ("real_digits", "no_digit"):
        for kind, figures in results[group]["kinds"].items():
            findings = ", ".join(f"{finding.lower().replace('_', ' ')} {count}"
                                 for finding, count in figures["findings"].items())
            rows.append([kind, "digit" if group == "real_digits" else "no digit", figures["pictures"], findings])
    real, none = results["real_digits"], results["no_digit"]
    return (f"{format_markdown_table(['pictures', 'holds', 'count', 'what the ink analysis found'], rows)}\n\n"
            f"Real digits read: **{real['read_rate']:.1%}**; pictures without a digit refused: "
            f"**{none['refusal_rate']:.1%}**.")


def render_novelty(results: dict[str, Any]) -> str:
    families = results["page"]
    real = set(results["real_digits"])
    return format_markdown_table(
        ["pictures", "holds", "count", "refused by the ink analysis", "then by the models", "refused in all"],
        [[family, "digit" if family in real else "no digit", f"{figures['pictures']:,}", figures["refused_by_ink"],
          figures["refused_by_models"], f"{figures['refused']:.1%}"] for family, figures in families.items()])


def render_real_input(results: dict[str, Any]) -> str:
    """Per digit source, the pictures refused by preprocessing and each model's right / wrong of the rest; per
    control, the pictures refused and read as a digit, with each model's novelty flags on those."""
    sources, models = results["sources"], list(results["titles"])
    digits = {name: source for name, source in sources.items() if not source["control"]}
    controls = {name: source for name, source in sources.items() if source["control"]}

    def refused(source: dict[str, Any]) -> str:
        return f"{source['refused']:,} ({source['refused'] / max(source['pictures'], 1):.0%})"

    table = format_markdown_table(
        ["source", "pictures", "refused", *(f"`{model}` right / wrong" for model in models)],
        [[f"`{name}`", f"{source['pictures']:,}", refused(source),
          *(f"{source['models'][model]['right']:,} / {source['models'][model]['wrong']:,}"
            if model in source["models"] else "–" for model in models)] for name, source in digits.items()])
    text = table
    if controls:
        def flagged(source: dict[str, Any], model: str) -> str:
            value = source["models"].get(model, {}).get("flagged")
            return "–" if value is None else f"{value:,}"

        text += "\n\n" + format_markdown_table(
            ["control (no digit)", "pictures", "refused", "read as a digit", *(f"`{model}` flags" for model in models)],
            [[f"`{name}`", f"{source['pictures']:,}", refused(source),
              f"{source['pictures'] - source['refused']:,}", *(flagged(source, model) for model in models)]
             for name, source in controls.items()])
    tallies = {model: [source["models"][model] for source in digits.values() if model in source["models"]]
               for model in models}
    text += "\n\nRight of all digit pictures, refused ones counted as not right: " + ", ".join(
        f"`{model}` {sum(t['right'] for t in rows) / sum(t['pictures'] for t in rows):.1%}"
        for model, rows in tallies.items() if sum(t["pictures"] for t in rows)) + "."
    text += "\n\n" + "\n".join(f"- `{name}`: {source['description']}" for name, source in sources.items())
    findings = {name: ", ".join(f"{finding.lower().replace('_', ' ')} {count:,}"
                                for finding, count in source["findings"].items())
                for name, source in sources.items() if source["findings"]}
    if findings:
        text += "\n\nWhy pictures were refused: " + "; ".join(f"`{name}`: {found}" for name, found in findings.items())
        text += "."
    for name, why in results.get("skipped", {}).items():
        text += f"\n\nNot measured: `{name}` ({why})."
    return text


def render_latency(results: dict[str, Any]) -> str:
    runs = [("before", results["before"]), ("after", results)] if results.get("before") else [("now", results)]

    def label(name: str, run: dict[str, Any]) -> str:
        return f"{name} (`{run.get('commit', '?')}`, {run['models']} models)"

    visits = format_markdown_table(
        ["run", *results["first_visit_ms"], "switch to a visited page (p50 / p95)"],
        [[label(name, run), *(f"{run['first_visit_ms'][page]:,.0f} ms" if page in run["first_visit_ms"] else "–"
                              for page in results["first_visit_ms"]),
          f"{run['switch']['p50_ms']:,.0f} / {run['switch']['p95_ms']:,.0f} ms"] for name, run in runs])

    def cell(value: float | None, digits: int = 0) -> str:
        return "–" if value is None else f"{value:,.{digits}f}"

    drawing = format_markdown_table(
        ["run", "visitors", "mouse-up → answers (p50 / p95)", "canvas delay", "to 1st message", "last message",
         "messages", "rendering after it", "server run (p50)", "inference (page's figures)"],
        [[label(name, run), visitors, f"**{row['p50_ms']:,.0f} / {row['p95_ms']:,.0f} ms**",
          cell(row["median_component_delay_ms"]), cell(row["median_first_message_ms"]),
          cell(row["median_last_message_ms"]), cell(row["median_messages"]), cell(row["median_render_ms"]),
          cell(row["server_run_p50_ms"]), cell(row["median_inference_ms"], 1)]
         for name, run in runs for visitors, row in run["drawing"].items()])
    return (f"{visits}\n\nAbove: the first visit of each page after the server started, and page switches. Below: "
            f"drawing, medians in ms unless marked (timestamps taken in the page; the server's run from its own "
            f"clock).\n\n{drawing}")


def render_explain(results: dict[str, Any]) -> str:
    attributions = results["attributions"]
    rows = [[f"`{name}`: its three maps", f"{figures['p50_ms']:,.0f} / {figures['p95_ms']:,.0f} ms", ""]
            for name, figures in attributions["per_model_ms"].items()]
    overall = attributions["all_models_ms"]
    rows.append([f"**all {len(attributions['per_model_ms'])} models, one digit** ({attributions['digits']} digits)",
                 f"**{overall['p50_ms']:,.0f} / {overall['p95_ms']:,.0f} ms**",
                 _verdict(overall["p50_ms"], attributions["goal_ms"])])
    names = {"explain_what_if": "what-if slider → every answer", "explain_adversarial": "ε slider (FGSM) → every "
             "model attacked and answering"}
    rows += [[f"{names[event]}, server ({figures['changes']} changes, AppTest)", f"{figures['p50_ms']:,.0f} / "
              f"{figures['p95_ms']:,.0f} ms", _verdict(figures["p50_ms"], figures["goal_ms"])]
             for event, figures in results["sliders"].items()]
    rows += [[f"{names[event]}, key press to the answers on screen in Chromium ({figures['changes']} changes; the "
              f"server's part {figures['server_ms']['p50_ms']:,.0f} ms)", f"{figures['p50_ms']:,.0f} / "
              f"{figures['p95_ms']:,.0f} ms", _verdict(figures["p50_ms"], figures["goal_ms"])]
             for event, figures in (results.get("browser_sliders") or {}).items()]
    return format_markdown_table(["work", "p50 / p95", "goal (median)"], rows)


def render_evidence(results: dict[str, Any]) -> str:
    models = results["models"]
    parts = list(next(iter(models.values()))["seconds"])
    rows = [[f"`{name}`", *(f"{model['seconds'][part]:,.1f} s" for part in parts), f"{model['total_s']:,.1f} s",
             f"{model['total_bytes'] / 1e3:,.0f} KB"] for name, model in models.items()]
    time_met = "met" if results["total_s"] <= results["time_goal_s"] else "not met"
    size_met = "met" if results["total_mb"] <= results["size_goal_mb"] else "not met"
    rows.append([f"**all {len(models)}** ({results['test_digits']:,} test digits)", *([""] * len(parts)),
                 f"**{results['total_s']:,.0f} s** (goal {results['time_goal_s']:,.0f} s: {time_met})",
                 f"**{results['total_mb']:.2f} MB** (goal {results['size_goal_mb']:.0f} MB: {size_met})"])
    return format_markdown_table(["model", *parts, "total", "files"], rows)


def render_reading(results: dict[str, Any]) -> str:
    goals, reference = results["goals"], results["reference_model"]

    def met(value: float, goal: float) -> str:
        return f"{value:.2%} ({'met' if value >= goal else 'not met'})"

    models = format_markdown_table(
        ["model", f"whole number (goal {goals['whole_number_accuracy']:.0%})",
         f"digits (goal {goals['digit_accuracy']:.1%})", "digits, on pages cut right", "touching pages: whole number",
         "wrong count", "wrong digit", "reading (p50)"],
        [[f"`{name}`", met(figures["whole_number_accuracy"], goals["whole_number_accuracy"]),
          met(figures["digit_accuracy"], goals["digit_accuracy"]), f"{figures['digit_accuracy_when_count_right']:.2%}",
          f"{figures['touching_pages']['whole_number_accuracy']:.1%} of {figures['touching_pages']['pages']}",
          figures["failures"]["wrong_count"], figures["failures"]["wrong_digit"],
          f"{figures['read_ms']['p50_ms']:.2f} ms"]
         for name, figures in results["models"].items()])
    counts = format_markdown_table(
        ["digits", "pages", "whole number", "digits"],
        [[count, figures["pages"], f"{figures['whole_number_accuracy']:.1%}", f"{figures['digit_accuracy']:.2%}"]
         for count, figures in results["models"][reference]["per_count"].items()])
    blank, segmentation = results["blank"], results["segmentation_ms"]
    cut_right = results["models"][reference]["count_right"]
    return (f"{models}\n\nBy digit count, `{reference}`:\n\n{counts}\n\n{results['pages']} synthetic pages (seeds "
            f"{results['first_seed']} on), {cut_right:.1%} cut into the right number of digits; cutting a page into "
            f"digits: {_ms(segmentation, 1)} (p50 / p95). Pages without a number read as one: "
            f"**{blank['read_as_something']} of {blank['pages']}**.")


def _verdict(median_ms: float, goal_ms: float) -> str:
    return f"{goal_ms:,.0f} ms: {'met' if median_ms <= goal_ms else 'not met'}"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "time_to_99": render_time_to_99, "inference": render_inference, "training": render_training,
    "dashboard": render_dashboard, "train_page": render_train_page, "load": render_load, "decode": render_decode,
    "no_digit": render_no_digit, "novelty": render_novelty, "latency": render_latency, "explain": render_explain,
    "evidence": render_evidence, "reading": render_reading, "viewers": render_viewers,
    "distributed": render_distributed, "real_input": render_real_input,
}


def render_headline(results_dir: Path = RESULTS) -> str:
    """The README's key figures: a few lines from the files whose full tables are on the docs' Results page."""
    lines = []
    inference = _load("inference", results_dir)
    if inference is None:
        lines.append(f"- {_not_measured('inference')}")
    else:
        drawing, evaluation = inference["drawing_all_models"], inference["evaluation"]
        lines.append(f"- **A drawing read by every model**: {_ms(drawing['total_ms'], 2)} (p50 / p95) to preprocess "
                     f"one drawing and pass it through {len(drawing['models'])} models, on "
                     f"{inference['environment']['torch_threads']} CPU threads.")
        lines.append(f"- **Evaluating**: all {len(evaluation['seconds'])} shipped models on the "
                     f"{evaluation['test_images']:,} test images in {evaluation['total_s']:.1f} s.")
    latency = _load("latency", results_dir)
    if latency is None:
        lines.append(f"- {_not_measured('latency')}")
    else:
        crowds = ", ".join(f"{row['p50_ms']:,.0f} ms with {visitors} drawing at once"
                           for visitors, row in latency["drawing"].items() if visitors != "1")
        one = latency["drawing"]["1"]
        lines.append(f"- **In a real browser**: mouse-up to every answer on screen in {one['p50_ms']:,.0f} ms (p50) "
                     f"for one visitor" + (f", {crowds}" if crowds else "") + ".")
    time_to_99 = _load("time_to_99", results_dir)
    if time_to_99 is None:
        lines.append(f"- {_not_measured('time_to_99')}")
    else:
        summary = time_to_99["speedrun"]["summary"]
        lines.append(f"- **99% in seconds**: `speedrun` trains in {summary['median_train_time_s']:.1f} s (median of "
                     f"{summary['seeds']} seeds) to {summary['mean_accuracy']:.2%} mean test accuracy (worst seed "
                     f"{summary['min_accuracy']:.2%}), on {time_to_99['environment']['torch_threads']} CPU threads.")
    real_input = _load("real_input", results_dir)
    if real_input is None:
        lines.append(f"- {_not_measured('real_input')}")
    else:
        lines.append(_real_input_headline(real_input))
    return "\n".join(lines)


def _real_input_headline(results: dict[str, Any]) -> str:
    """The most refused digit source, the best and worst model's right share over all digits, the no-digit corpus."""
    sources = results["sources"]
    digits = [source for source in sources.values() if not source["control"]]
    most_refused = max(source["refused"] / max(source["pictures"], 1) for source in digits)
    right = {model: sum(source["models"][model]["right"] for source in digits if model in source["models"]) /
             sum(source["models"][model]["pictures"] for source in digits if model in source["models"])
             for model in results["titles"]}
    best, worst = max(right, key=right.__getitem__), min(right, key=right.__getitem__)
    line = (f"- **Real input** (other writers' scanned digits, close-ups, low resolution, photos on paper): at most "
            f"{most_refused:.1%} of a source refused; `{best}` reads {right[best]:.1%} right, `{worst}` "
            f"{right[worst]:.1%}")
    control = sources.get("no-digit")
    if control is not None:
        line += f"; pictures without a digit: {control['refused']:,} of {control['pictures']:,} refused"
    return line + "."


def _load(name: str, results_dir: Path) -> dict[str, Any] | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _command(name: str, results: dict[str, Any] | None = None) -> str:
    argv = (results or {}).get("environment", {}).get("argv")
    if argv is None:
        return f"python -m benchmarks.bench_{name} --json benchmarks/results/{name}.json"
    return " ".join([f"python -m benchmarks.bench_{name}", *argv])


def _not_measured(name: str) -> str:
    return f"Not measured yet: `{_command(name)}`."


def render(name: str, results_dir: Path = RESULTS) -> str:
    if name == HEADLINE:
        return render_headline(results_dir)
    results = _load(name, results_dir)
    if results is None:
        return _not_measured(name)
    environment = results.get("environment", {})
    where = (f"torch {environment['torch']} · {environment['cpu']} · {environment['torch_threads']} torch threads · "
             f"load average {environment['load_average_1_5_15'][0]:.2f} at the start" if environment else "")
    return f"{RENDERERS[name](results)}\n\n<sub>`{_command(name, results)}`{' · ' + where if where else ''}</sub>"


SECTIONS: tuple[str, ...] = (*RENDERERS, HEADLINE)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- speed:{name}:start -->", f"<!-- speed:{name}:end -->"


def documents(root: Path = ROOT) -> list[Path]:
    """The files that may hold speed sections: README.md and every Markdown page under docs/."""
    readme = root / "README.md"
    return [*([readme] if readme.is_file() else []), *sorted((root / "docs").rglob("*.md"))]


def update_readme(readme: Path, results_dir: Path = RESULTS) -> list[str]:
    """Replace every speed section of one file (the README or a docs page); the names of the sections it had."""
    return [name for name in SECTIONS
            if replace_between_markers(readme, *_markers(name), render(name, results_dir))]


def update_docs(root: Path = ROOT, results_dir: Path = RESULTS) -> dict[Path, list[str]]:
    """Replace every speed section in README.md and docs/**/*.md; for each file that had any, their names."""
    updated = {path: update_readme(path, results_dir) for path in documents(root)}
    return {path: names for path, names in updated.items() if names}


def stale_sections(root: Path = ROOT, results_dir: Path = RESULTS) -> list[str]:
    """What --update-docs would change, one line each: sections whose text differs from a fresh rendering, and
    sections no file holds. Empty when every file is current."""
    problems, found = [], set()
    for path in documents(root):
        text = path.read_text()
        for name in SECTIONS:
            start, end = _markers(name)
            if start not in text:
                continue
            found.add(name)
            if f"{start}\n{render(name, results_dir)}\n{end}" not in text:
                problems.append(f"{path.relative_to(root)}: the {name} section is stale")
    problems += [f"no file holds the {name} section" for name in SECTIONS if name not in found]
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update-docs", action="store_true",
                      help="rewrite the speed sections in README.md and every docs/**/*.md page that holds them")
    mode.add_argument("--update-readme", type=Path, metavar="FILE", help="rewrite the speed sections in this file only")
    mode.add_argument("--check", action="store_true", help="exit 1, naming them, if any section is stale or missing")
    args = parser.parse_args()
    if args.update_docs:
        for path, names in update_docs().items():
            print(f"updated {', '.join(names)} in {path.relative_to(ROOT)}")
        for problem in stale_sections():
            print(problem)
        return
    if args.update_readme:
        updated = update_readme(args.update_readme)
        print(f"updated {', '.join(updated) or 'no'} speed section(s) in {args.update_readme}")
        return
    if args.check:
        problems = stale_sections()
        print("\n".join(problems) or "every speed section is current")
        raise SystemExit(1 if problems else 0)
    for name in SECTIONS:
        print(f"## {name}\n\n{render(name)}\n")


if __name__ == "__main__":
    main()
