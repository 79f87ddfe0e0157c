"""`socialpulse evaluate ...`: measure the live models on labelled data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from app.commands.options import (
    ClusterCount,
    encoding_option,
    no_progress_option,
    text_col_option,
)

FILE_HELP = "Labelled CSV, TSV or JSONL file (the format comes from the suffix)."


@click.group()
def evaluate() -> None:
    """Measure the live clustering and sentiment paths on a labelled file."""


@dataclass
class Column:
    """Texts and one other column of the usable rows of a file."""

    texts: list[str]
    values: list[Any]
    lines: list[int]  # where each row starts in the file, for error messages
    skipped: int  # rows without text or value, or unreadable


def _file_option(command):
    return click.option(
        "--file",
        "file_",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=FILE_HELP,
    )(command)


def _common_options(command):
    options = [
        text_col_option,
        encoding_option,
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
        no_progress_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_column(
    path: Path,
    text_col: str,
    value_col: str | None,
    encoding: str = "utf-8",
    dedupe_col: str | None = None,
    value_option: str = "--label-col",
) -> Column:
    """The text (and `value_col`) of every row that has them, read with `read_rows`.

    Raises:
        click.UsageError: a column is not in the file, or the file type is not supported.
        click.ClickException: the file is empty or not valid in `encoding`.
    """
    from streaming.sources import read_rows

    try:
        rows = [(line, row) for line, row in read_rows(path, encoding) if isinstance(row, dict)]
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"{path.name} is not valid {encoding} text (byte {exc.start}): "
            "pass its encoding with --encoding, e.g. latin-1"
        ) from exc
    except LookupError as exc:
        raise click.UsageError(f"unknown --encoding {encoding!r}") from exc
    except ValueError as exc:  # an unsupported suffix (UnicodeDecodeError is caught above)
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise click.ClickException(f"{path.name} has no rows to evaluate")
    present = {key for _, row in rows for key in row if isinstance(key, str)}
    for option, column in (("--text-col", text_col), (value_option, value_col)):
        if column is not None and column not in present:
            raise click.UsageError(
                f"column {column!r} ({option}) is not in {path.name}; "
                f"its columns are: {', '.join(sorted(present))}"
            )
    if dedupe_col is not None and dedupe_col not in present:
        raise click.UsageError(f"column {dedupe_col!r} (--dedupe-col) is not in {path.name}")

    column = Column([], [], [], skipped=0)
    seen: set[str] = set()
    for line, row in rows:
        text = row.get(text_col)
        value = row.get(value_col) if value_col is not None else None
        if not isinstance(text, str) or not text.strip() or (value_col and value in (None, "")):
            column.skipped += 1
            continue
        if dedupe_col is not None:
            key = str(row.get(dedupe_col))
            if key in seen:
                column.skipped += 1
                continue
            seen.add(key)
        column.texts.append(text)
        column.values.append(value)
        column.lines.append(line)
    if not column.texts:
        raise click.ClickException(
            f"no row of {path.name} has both a text and a value in the columns given"
        )
    return column


def _progress(total: int, desc: str, disabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, unit="post" if desc != "choose-k" else "k", desc=desc, disable=disabled
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _emit_json(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


# -- clustering --------------------------------------------------------------------------------
@evaluate.command()
@_file_option
@click.option(
    "--k",
    "k",
    required=True,
    type=ClusterCount(),
    help="Number of clusters, or 'auto': topics are born, merge and retire as the stream "
    "goes (the live default); the baselines then use the true number of labels.",
)
@click.option("--label-col", default="cluster", show_default=True, help="Reference topic column.")
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Posts per micro-batch, as the live stream batches them.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option(
    "--no-baselines", is_flag=True, help="Skip batch KMeans and one-pass MiniBatchKMeans."
)
@_common_options
def clustering(
    file_, k, label_col, batch_size, seed, no_baselines, text_col, encoding, as_json, no_progress
) -> None:
    """Stream a labelled file through the live topic clusterer and score its clusters.

    Posts go through the live path (topic document, TF-IDF, online k-means with its refits)
    in micro-batches, in file order. Reported are NMI, ARI, V-measure and cosine silhouette
    of the clusters every post has at the end of the stream, and of the ids posts got on
    arrival; for comparison, batch TF-IDF + KMeans and one-pass MiniBatchKMeans. With
    --k auto the clusterer opens, merges and retires topics itself (the live default), the
    baselines get the true number of labels, and the topic counts are reported too.
    """
    from models.evaluation import evaluate_streaming_clustering

    data = load_column(file_, text_col, label_col, encoding)
    if k != "auto" and k >= len(data.texts):
        raise click.UsageError(
            f"--k {k} needs more than {k} posts; {file_.name} has {len(data.texts)}"
        )
    with _progress(len(data.texts), "stream", no_progress or as_json) as bar:
        try:
            report = evaluate_streaming_clustering(
                data.texts,
                data.values,
                k,
                batch_size=batch_size,
                seed=seed,
                baselines=not no_baselines,
                progress=bar,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        _emit_json({"file": str(file_), "skipped_rows": data.skipped, **report.to_dict()})
        return
    used = report.streaming.n_docs
    click.echo(
        f"Streaming topic clusters on {file_.name}: {used:,} posts "
        f"({data.skipped + report.skipped} skipped), k = {k}, micro-batches of {batch_size}"
    )
    click.echo(
        f"warm start on the first {report.warm_start_docs:,} posts, {report.refits} refits, "
        f"{report.seconds:.1f} s"
    )
    if k == "auto":
        click.echo(
            f"topics: {report.warm_start_topics} after the warm start, {report.births} born, "
            f"{report.merges} merged, {report.retirements} retired; {report.live_clusters} "
            f"live at the end (the labels have {report.true_k})"
        )
    click.echo()
    rows = [
        ("live streaming, end of stream", report.streaming),
        ("live streaming, ids on arrival", report.on_arrival),
        ("batch TF-IDF + KMeans", report.batch_kmeans),
        ("one-pass MiniBatchKMeans", report.naive_minibatch),
    ]
    click.echo(f"{'':<32}{'NMI':>7}{'ARI':>8}{'V-measure':>11}{'silhouette':>12}")
    for name, scores in rows:
        if scores is None:
            continue
        click.echo(
            f"{name:<32}{scores.nmi:>7.3f}{scores.ari:>8.3f}{scores.v_measure:>11.3f}"
            f"{_fmt(scores.silhouette):>12}"
        )
    click.echo(
        "\nThe first row is the headline: every post as the live clusterer assigns it once the "
        "stream has passed."
    )


@evaluate.command("choose-k")
@_file_option
@click.option("--k-min", default=2, show_default=True, type=click.IntRange(min=2))
@click.option("--k-max", default=30, show_default=True, type=click.IntRange(min=2))
@click.option("--step", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@_common_options
def choose_k_command(
    file_, k_min, k_max, step, seed, text_col, encoding, as_json, no_progress
) -> None:
    """Inertia and silhouette of k-means for each k in a range, and the k each rule picks.

    The elbow is the k farthest from the chord of the inertia curve ("kneedle"); the other
    pick has the highest cosine silhouette. Features are the live clusterer's TF-IDF.
    """
    from models.evaluation import choose_k, topic_documents

    if k_max < k_min:
        raise click.UsageError(f"--k-max {k_max} is below --k-min {k_min}")
    candidates = list(range(k_min, k_max + 1, step))
    if len(candidates) < 3:
        raise click.UsageError("the range gives fewer than three values of k: widen it")
    data = load_column(file_, text_col, None, encoding)
    docs, _ = topic_documents(data.texts)
    if k_max >= len(docs):
        raise click.UsageError(
            f"--k-max {k_max} needs more than {k_max} posts; there are {len(docs)}"
        )
    with _progress(len(candidates), "choose-k", no_progress or as_json) as bar:
        choice = choose_k(docs, candidates, seed=seed, progress=bar)
    if as_json:
        _emit_json({"file": str(file_), "posts": len(docs), **choice.to_dict()})
        return
    click.echo(f"k-means on {len(docs):,} posts of {file_.name}\n")
    click.echo(f"{'k':>5}{'inertia':>12}{'silhouette':>12}")
    for score in choice.scores:
        marks = [
            name
            for name, k in (("elbow", choice.elbow_k), ("best silhouette", choice.silhouette_k))
            if k == score.k
        ]
        click.echo(
            f"{score.k:>5}{score.inertia:>12.1f}{_fmt(score.silhouette):>12}"
            + (f"   <- {', '.join(marks)}" if marks else "")
        )
    click.echo(
        f"\nelbow (kneedle): k = {choice.elbow_k}; best silhouette: k = {choice.silhouette_k}"
    )


# -- sentiment ---------------------------------------------------------------------------------
@evaluate.command()
@_file_option
@click.option("--label-col", help="Column of positive / neutral / negative labels (any case).")
@click.option("--rating-col", help="Column of numeric ratings (e.g. 1-5 stars).")
@click.option("--dedupe-col", help="Keep only the first row of each value of this column.")
@click.option(
    "--cv",
    "cv_folds",
    type=click.IntRange(min=2),
    help="Cross-validate a new calibrated model on this file's labels in N folds (plus every "
    "--train-file) instead of using the saved version's.",
)
@click.option(
    "--train-file",
    "train_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="With --cv: more labelled files every fold also learns from (as `train "
    "--sentiment-file`).",
)
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
@click.option("--version", "model_version", help="Model version to use [default: newest].")
@_common_options
def sentiment(
    file_,
    label_col,
    rating_col,
    dedupe_col,
    cv_folds,
    train_files,
    model_dir,
    model_version,
    text_col,
    encoding,
    as_json,
    no_progress,
) -> None:
    """Score a labelled file with the live sentiment models: VADER and the calibrated label.

    With --label-col: accuracy, macro-F1, per-class precision/recall/F1 and the confusion
    matrix (rows: actual, columns: predicted) of VADER's label, then the same for the
    calibrated label of the newest (or --version) model version, with log loss, Brier score
    and calibration error (JSON key "model"). A version trained on this very file is flagged
    ("trained_on_file"): its scores are not a held-out measure; --cv gives one. With
    --rating-col: Pearson and Spearman correlation of VADER's compound score with the ratings.
    """
    from models.evaluation import (
        evaluate_sentiment_labels,
        evaluate_sentiment_ratings,
        normalize_sentiment_label,
    )

    if (label_col is None) == (rating_col is None):
        raise click.UsageError("give exactly one of --label-col or --rating-col")
    data = load_column(
        file_,
        text_col,
        label_col or rating_col,
        encoding,
        dedupe_col,
        value_option="--label-col" if label_col else "--rating-col",
    )
    values = []
    for line, value in zip(data.lines, data.values, strict=True):
        try:
            values.append(normalize_sentiment_label(value) if label_col else float(value))
        except ValueError as exc:
            what = str(exc) if label_col else f"rating {str(value)[:40]!r} is not a number"
            raise click.ClickException(f"{file_.name}, line {line}: {what}") from exc
    with _progress(len(data.texts), "sentiment", no_progress or as_json) as bar:
        try:
            if label_col:
                report = evaluate_sentiment_labels(data.texts, values, progress=bar)
            else:
                report = evaluate_sentiment_ratings(data.texts, values, progress=bar)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if rating_col:
        if as_json:
            _emit_json({"file": str(file_), "skipped_rows": data.skipped, **report.to_dict()})
            return
        click.echo(
            f"Live sentiment (VADER) on {file_.name}: {report.n:,} posts ({data.skipped} skipped)\n"
        )
        click.echo(f"Pearson r {report.pearson:.3f}   Spearman {report.spearman:.3f}")
        return
    model = _calibrated_report(
        file_, data.texts, values, cv_folds, train_files, model_dir, model_version
    )
    if as_json:
        _emit_json(
            {"file": str(file_), "skipped_rows": data.skipped, **report.to_dict(), "model": model}
        )
        return
    click.echo(
        f"Live sentiment (VADER) on {file_.name}: {report.n:,} posts ({data.skipped} skipped)\n"
    )
    _print_label_report(report.to_dict())
    click.echo(f"\nCalibrated label ({model['kind']}, {model['source']})")
    if model.get("trained_on_file"):
        click.echo("  warning: this version learned from this file; see --cv for a held-out figure")
    click.echo(
        f"log loss {model['log_loss']:.3f}   Brier {model['brier']:.3f}   "
        f"calibration error {model['ece']:.3f}"
    )
    _print_label_report(model)


def _calibrated_report(
    file_: Path,
    texts: list[str],
    labels: list[str],
    cv_folds: int | None,
    train_files: tuple[str, ...],
    model_dir: str | None,
    model_version: str | None,
) -> dict[str, Any]:
    """The calibrated label's report: cross-validated, or from a saved version."""
    from models.evaluation import evaluate_calibrated_sentiment

    if cv_folds:
        from models.sentiment_training import cross_validate_sentiment, load_sentiment_files

        extra = load_sentiment_files(list(train_files)) if train_files else None
        try:
            report = cross_validate_sentiment(texts, labels, cv_folds, extra)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        source = f"{cv_folds}-fold cross-validation" + (
            f" with {', '.join(Path(f).name for f in train_files)}" if train_files else ""
        )
        return {**report.to_dict(), "source": source, "cross_validated": cv_folds}
    if train_files:
        raise click.UsageError("--train-file needs --cv")
    from app.commands.options import load_config
    from models.calibrated_sentiment import VaderFallbackSentimentModel
    from models.registry import ArtifactError, list_versions, load_bundle, sha256_file

    config = load_config(model_dir=model_dir)
    root = Path(config.model_dir)
    sentiment, version, trained_on = VaderFallbackSentimentModel(), None, False
    source = "no model version: VADER fallback"
    if model_version or list_versions(root):
        try:
            bundle = load_bundle(root, model_version, config.manifest_key())
        except ArtifactError as exc:
            if model_version:
                raise click.ClickException(str(exc)) from exc
            # VADER's figures stay useful without a usable version; say why there is none.
            source = f"no usable model version ({exc}): VADER fallback"
        else:
            version = bundle.version
            sentiment = bundle.pipeline().sentiment
            files = bundle.manifest.get("data", {}).get("sentiment", {}).get("files", [])
            trained_on = sha256_file(file_) in {f.get("sha256") for f in files}
            source = f"model version {version}"
    report = evaluate_calibrated_sentiment(texts, labels, sentiment)
    return {
        **report.to_dict(),
        "source": source,
        "version": version,
        "trained_on_file": trained_on,
    }


def _print_label_report(report: dict[str, Any]) -> None:
    """Accuracy, macro-F1, per-class scores and the confusion of a label report's dict."""
    from models.evaluation import SENTIMENT_LABELS

    get = report.get
    click.echo(f"accuracy {get('accuracy'):.3f}   macro-F1 {get('macro_f1'):.3f}\n")
    click.echo(f"{'':<10}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for label in SENTIMENT_LABELS:
        s = get("per_class")[label]
        click.echo(
            f"{label:<10}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>8.3f}"
            f"{s['support']:>9,}"
        )
    click.echo("\nconfusion (rows: actual, columns: predicted)")
    click.echo(f"{'':<10}" + "".join(f"{label:>10}" for label in SENTIMENT_LABELS))
    for label, row in zip(SENTIMENT_LABELS, get("confusion"), strict=True):
        click.echo(f"{label:<10}" + "".join(f"{count:>10,}" for count in row))


@evaluate.command("corrections")
@click.option("--model-dir", help="Folder of model versions [SOCIALPULSE_MODEL_DIR].")
@click.option("--version", "model_version", help="Model version to use [default: newest].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def corrections_command(model_dir, model_version, as_json) -> None:
    """Measure a model version on the corrections people made in Explore that are kept
    aside (a fifth of posts, chosen by a digest of the id: no version learns from them).

    Sentiment: accuracy, macro-F1, per class and confusion of VADER's label and of the
    calibrated label. Topics: how well the clusters agree with the names people gave (NMI,
    adjusted Rand index, and the share of same-name pairs put in one cluster).
    """
    from app.commands.options import load_config, load_corrections
    from models.corrections import evaluate_corrections
    from models.registry import ArtifactError, load_bundle

    config = load_config(model_dir=model_dir)
    corrections = load_corrections(config, True)
    try:
        bundle = load_bundle(Path(config.model_dir), model_version, config.manifest_key())
    except ArtifactError as exc:
        raise click.ClickException(str(exc)) from exc
    pipeline = bundle.pipeline()
    report = {
        "version": bundle.version,
        **evaluate_corrections(corrections, pipeline.sentiment, pipeline.clusterer),
    }
    if as_json:
        _emit_json(report)
        return
    counts = report["counts"]
    click.echo(
        f"Corrections kept aside, model version {bundle.version}: "
        f"{counts['sentiment']['test']} of sentiment, {counts['topic']['test']} of topics "
        f"({counts['sentiment']['train']} and {counts['topic']['train']} more are training data)"
    )
    if "sentiment" in report:
        sentiment = report["sentiment"]
        click.echo("\nVADER's label")
        _print_label_report(sentiment["vader"])
        click.echo(f"\nCalibrated label ({sentiment['model']['kind']})")
        _print_label_report(sentiment["model"])
    if "topic" in report:
        topic = report["topic"]
        click.echo(
            f"\nTopics: {topic['rows']} posts under {topic['names']} names fall in "
            f"{topic['clusters']} clusters: NMI {topic['nmi']:.3f}, ARI {topic['ari']:.3f}, "
            f"same-name pairs together {_fmt(topic['pairs_together'])}"
        )
    if "sentiment" not in report and "topic" not in report:
        click.echo("Nothing to measure yet: no correction is kept aside.")


@evaluate.command("alerts")
@click.option(
    "--seeds",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Streams of each kind.",
)
@click.option(
    "--days",
    default=3.0,
    show_default=True,
    type=click.FloatRange(1.0, 30.0),
    help="Days of each planted stream.",
)
@click.option(
    "--calm-days",
    default=7.0,
    show_default=True,
    type=click.FloatRange(1.0, 60.0),
    help="Days of each calm stream.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def alerts_command(seeds: int, days: float, calm_days: float, as_json: bool) -> None:
    """Run the alert detectors on generated streams with planted events (volume bursts of
    2-10×, sentiment shifts, new topics) and on calm streams with a daily cycle: recall,
    precision, detection delay and false alarms per 6 hours, against the targets."""
    from insights.alert_evaluation import evaluate_alerts

    report = evaluate_alerts(seeds=seeds, days=days, calm_days=calm_days)
    if as_json:
        _emit_json(report)
        return
    planted, calm = report["planted"], report["calm"]
    click.echo(
        f"Alert detectors on {seeds} planted streams ({planted['hours']:g} h, "
        f"{planted['events']} events, {planted['alerts']} alerts) and {seeds} calm streams "
        f"({calm['hours']:g} h, {calm['false_alarms']} false alarms)\n"
    )
    click.echo(f"{'figure':<28}{'value':>8}{'target':>9}  met")
    for name, value in report["figures"].items():
        target = report["targets"][name]
        click.echo(
            f"{name:<28}{_fmt(value):>8}{target:>9g}  {'yes' if report['met'][name] else 'NO'}"
        )
    click.echo(
        "\nrecall by event: "
        + ", ".join(f"{name} {_fmt(value)}" for name, value in planted["recall"].items())
    )
    early = report["early"]
    click.echo(
        f"early (provisional) alerts, {early['late_share']:.0%} of posts late: "
        f"{early['raised']} raised, {early['withdrawn']} withdrawn at close; "
        f"{_fmt(early['calm_early_alarms_per_6_hours'])} early alarms per 6 h of calm stream"
    )


# -- audiences -------------------------------------------------------------------------------
@evaluate.command("audiences")
@click.option(
    "--posts",
    default=40_000,
    show_default=True,
    type=click.IntRange(2_000, 2_000_000),
    help="Posts of the planted stream.",
)
@click.option(
    "--authors",
    default=800,
    show_default=True,
    type=click.IntRange(20, 200_000),
    help="Authors of the planted stream (spread over the planted segments).",
)
@click.option(
    "--min-posts",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Authors with fewer posts are not evaluated.",
)
@click.option("--k", "k", default=0, type=click.IntRange(0, 50), help="Segments (0: silhouette).")
@click.option(
    "--rounds", default=5, show_default=True, type=click.IntRange(1, 50), help="Bootstrap refits."
)
@click.option(
    "--planted",
    type=click.Choice(["distinct", "overlapping"]),
    default="distinct",
    show_default=True,
    help="distinct: segments differ in every block; overlapping: pairs share their "
    "interests and differ only in rhythm, replies, links and engagement.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def audiences_command(posts, authors, min_posts, k, rounds, planted, seed, as_json) -> None:
    """Segment a synthetic stream with planted audience segments (interests, daily rhythm,
    replies, links, engagement) scored by the serving models: ARI and NMI against the
    planted segments, silhouette, and stability (ARI of bootstrap refits)."""
    from app.commands.options import load_config
    from app.services import model_store
    from insights.audience_evaluation import evaluate_audiences
    from insights.segments import SegmentationError
    from models.registry import ArtifactError

    config = load_config()
    try:
        pipeline = model_store(config).load()
        report = evaluate_audiences(
            pipeline.score_batch,
            posts,
            authors,
            min_posts,
            seed=seed,
            k=k,
            rounds=rounds,
            planted=planted,
        )
    except (ArtifactError, SegmentationError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        _emit_json(report)
        return
    click.echo(
        f"Audience segments on {posts:,} posts by {authors:,} authors ({planted} planted "
        f"segments, "
        f"{report['authors_evaluated']} with ≥ {min_posts} posts), k = {report['k']}\n"
    )
    click.echo(f"{'figure':<16}{'value':>8}{'target':>9}  met")
    for name, value in report["figures"].items():
        target = report["targets"].get(name)
        met = "" if target is None else ("yes" if report["met"][name] else "NO")
        shown = "" if target is None else f"{target:g}"
        click.echo(f"{name:<16}{_fmt(value):>8}{shown:>9}  {met}")
    for segment in report["segments"]:
        planted = segment["planted"]
        click.echo(
            f"  [{segment['id']}] {segment['size']:>5} authors, "
            f"{planted['share']:.0%} {planted['segment']}: {segment['name']}"
        )
