"""`socialpulse train`: fit, evaluate on later posts, save a version; or show the history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from app.commands.options import (
    ClusterCount,
    column_mapping,
    encoding_option,
    load_config,
    load_corrections,
    mapping_options,
    no_progress_option,
)


def _target_columns(values: tuple[str, ...]) -> list[str]:
    """--target-col favorites, or likes+retweets, or the flag repeated: every column once."""
    columns = [c.strip() for value in values for c in value.split("+")]
    return list(dict.fromkeys(c for c in columns if c))


@click.command()
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV/TSV/JSONL file to train on; repeat for several (they are merged and sorted "
    "by time). Default: synthetic posts.",
)
@click.option(
    "--target-col",
    "target_cols",
    multiple=True,
    metavar="COLUMN",
    help="Outcome to predict, as log(1 + value); repeat or join with '+' to sum "
    "(e.g. favorites, or likes+retweets+replies). Required with --file.",
)
@encoding_option
@mapping_options
@click.option(
    "--posts",
    type=click.IntRange(min=100),
    default=6000,
    show_default=True,
    help="Synthetic posts to train on (without --file).",
)
@click.option(
    "--seed",
    type=int,
    default=11,
    show_default=True,
    help="Seed of the synthetic posts and of every model.",
)
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(["rf", "nn", "both"]),
    default="rf",
    show_default=True,
    help="rf: grid-searched random forest; nn: Keras network (needs TensorFlow) next to the "
    "forest at its default settings; both: the two, compared side by side. The live path "
    "always scores with the forest.",
)
@click.option(
    "--k",
    "n_clusters",
    type=ClusterCount(),
    default="auto",
    show_default=True,
    help="Topics: a number, or 'auto' (born, merged and retired as the stream goes).",
)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="Grid-search the forest with a time-series split (else its default settings).",
)
@click.option(
    "--cv-splits", type=click.IntRange(min=2), default=4, show_default=True, help="CV folds."
)
@click.option(
    "--author-window",
    type=click.IntRange(min=0),
    help="Posts the author's recent level averages; 0 turns author features off "
    "[default: searched between 0 and 20].",
)
@click.option(
    "--sentiment-file",
    "sentiment_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Labelled tweets (CSV/TSV/JSONL with text and negative/neutral/positive labels) for "
    "the calibrated sentiment model; repeat for several. Without it, posts get VADER's label "
    "with a measured probability.",
)
@click.option(
    "--sentiment-label-col",
    metavar="COLUMN",
    help="Label column of the sentiment files [default: label, sentiment or "
    "airline_sentiment, whichever a file has].",
)
@click.option(
    "--corrections/--no-corrections",
    "use_corrections",
    default=None,
    help="Learn from the corrections people made in Explore (read from the archive): "
    "sentiment labels join the --sentiment-file data, topics seed clusters; a fifth of "
    "posts are kept aside and measured [default: when the archive has any].",
)
@click.option("--model-dir", help="Where versions are saved [SOCIALPULSE_MODEL_DIR].")
@click.option("--json", "as_json", is_flag=True, help="Print the held-out metrics as JSON.")
@click.option("--history", is_flag=True, help="Show the logged training runs instead of training.")
@click.option("--no-report", is_flag=True, help="Do not write report.html into the version.")
@no_progress_option
def train(
    files,
    target_cols,
    encoding,
    posts,
    seed,
    model_kind,
    n_clusters,
    search,
    cv_splits,
    author_window,
    sentiment_files,
    sentiment_label_col,
    use_corrections,
    model_dir,
    as_json,
    history,
    no_report,
    no_progress,
    **columns,
) -> None:
    """Train the clustering and engagement models and save a new version.

    Rows are sorted by posting time; models learn from the earlier 80% and are measured on
    the later 20% (MAE, RMSE, R², Spearman, band accuracy and macro-F1), then refit on every
    row and saved under the model folder with a manifest (data sha256, parameters, metrics,
    library versions, sha256 of every file), an HTML report and an experiment-log entry.
    The server loads the newest version on its next start (or the one pinned with
    SOCIALPULSE_MODEL_VERSION).

    \b
    Example (FiveThirtyEight's tweets, outcome = favorites):
      socialpulse train --file BarackObama.csv --file realDonaldTrump.csv \\
        --encoding latin-1 --text-col text --author-col user --time-col created_at \\
        --time-format "%m/%d/%y %H:%M" --target-col favorites --model both
    """
    config = load_config(model_dir=model_dir)
    root = Path(config.model_dir)
    if history:
        _show_history(root, as_json)
        return

    from tqdm import tqdm

    from models.datasets import DatasetError, load_dataset, synthetic_dataset
    from models.neural import NeuralUnavailable
    from models.registry import REPORT_FILE, library_versions, new_version
    from models.training import TrainingOptions, save_result
    from models.training import train as fit

    targets = _target_columns(target_cols)
    if targets and not files:
        raise click.UsageError("--target-col needs --file (synthetic posts have their own)")
    options = TrainingOptions(
        model=model_kind,
        n_clusters=n_clusters,
        search=search,
        cv_splits=cv_splits,
        author_window=author_window,
        seed=seed,
    )
    if options.wants_neural:
        from models.neural import require_tensorflow

        try:
            require_tensorflow()
        except NeuralUnavailable as exc:
            raise click.ClickException(f"--model {model_kind}: {exc}") from exc

    stages = [
        "load data",
        *options.stages(),
        *(["sentiment model"] if sentiment_files else []),
        *([] if no_report else ["report"]),
        "save",
    ]
    with tqdm(total=len(stages), unit="stage", desc="train", disable=no_progress) as bar:
        bar.set_postfix_str(stages[0])

        def done(stage: str) -> None:
            bar.update(1)
            if bar.n < len(stages):
                bar.set_postfix_str(stages[bar.n])  # what runs now

        try:
            if files:
                dataset = load_dataset(files, column_mapping(columns), targets, encoding)
            else:
                dataset = synthetic_dataset(posts, seed=seed)
            corrections = load_corrections(config, use_corrections)
            sentiment_data = None
            if sentiment_files:
                from models.sentiment_training import load_sentiment_files

                sentiment_data = load_sentiment_files(sentiment_files, sentiment_label_col)
            done("load data")
            result = fit(
                dataset,
                options,
                progress=done,
                sentiment_data=sentiment_data,
                corrections=corrections,
            )
        except DatasetError as exc:
            raise click.ClickException(str(exc)) from exc
        except NeuralUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        result.bundle.version = new_version()
        extra = {}
        if not no_report:
            from app.report import build_report

            libraries = library_versions()
            if result.neural is not None:
                libraries.update(result.neural.library_versions())
            draft = {  # the manifest as it will be saved, without the file hashes
                "version": result.bundle.version,
                "created_at": datetime.now(UTC).isoformat(),
                "libraries": libraries,
                "data": result.data,
                "params": result.params,
                "metrics": result.metrics,
            }
            extra[REPORT_FILE] = build_report(draft, result.evaluation).encode()
            done("report")
        folder = save_result(
            result,
            root,
            extra_files=extra,
            key=config.manifest_key(),
            mlflow_uri=config.mlflow_tracking_uri,
            mlflow_experiment=config.mlflow_experiment,
        )
        done("save")

    metrics = result.metrics
    summary = {
        "version": folder.name,
        "folder": str(folder),
        "data": {k: result.data.get(k) for k in ("source", "fingerprint", "rows", "target")},
        "split": metrics["split"],
        "metrics": {"rf": metrics["engagement_holdout"]},
        "params": {
            "engagement": result.params["engagement"],
            "author_prior": result.params["author_prior"],
        },
        "seconds": result.seconds,
    }
    if "neural_holdout" in metrics:
        summary["metrics"]["nn"] = metrics["neural_holdout"]
    summary["sentiment"] = {
        "kind": result.params["sentiment"]["kind"],
        "holdout": metrics.get("sentiment_holdout", {}),
    }
    if "corrections" in result.data:
        summary["corrections"] = {
            "used": result.data["corrections"],
            "held_out": metrics["corrections"],
        }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary, None if no_report else folder / REPORT_FILE)


def _print_summary(summary: dict, report_path: Path | None) -> None:
    from models.metrics import ENGAGEMENT_METRICS

    metrics = summary["metrics"]
    models = [m for m in ("rf", "nn") if m in metrics]
    split = summary["split"]
    click.echo(
        f"saved version {summary['version']} in {summary['folder']}\n"
        f"data: {summary['data']['source']} ({summary['data']['rows']} rows, "
        f"target {summary['data']['target']})\n"
        f"held out: the later {split['test_rows']} rows, from {split['test_from']}\n"
    )
    names = {"rf": "forest", "nn": "network"}
    click.echo("metric          " + "".join(f"{names[m]:>10}" for m in models))
    for key, label in ENGAGEMENT_METRICS:
        click.echo(f"{label:<16}" + "".join(f"{metrics[m][key]:>10.3f}" for m in models))
    for m in models:
        rates = metrics[m]["band_rates"]
        click.echo(
            f"{names[m]} band rates (low / medium / high): predicted "
            + " / ".join(f"{r:.2f}" for r in rates["predicted"])
            + ", observed "
            + " / ".join(f"{r:.2f}" for r in rates["observed"])
        )
    sentiment = summary["sentiment"]
    click.echo(f"\nsentiment model: {sentiment['kind']}")
    for name, scores in sentiment["holdout"].items():
        click.echo(
            f"  {name} held out ({scores['test_rows']} rows): macro-F1 VADER "
            f"{scores['vader']['macro_f1']:.3f}, model {scores['model']['macro_f1']:.3f}"
        )
    if "corrections" in summary:
        _print_corrections(summary["corrections"])
    if report_path:
        click.echo(f"\nreport: {report_path}")


def _print_corrections(corrections: dict) -> None:
    used, held = corrections["used"], corrections["held_out"]
    click.echo(
        f"\ncorrections: sentiment {used['sentiment']['train']} to learn from "
        f"({used['sentiment_learned']} learned), {used['sentiment']['test']} kept aside; "
        f"topics {used['topic']['train']} to learn from "
        f"({len(used['topics_seeded'])} topics seeded), {used['topic']['test']} kept aside"
    )
    if "sentiment" in held:
        click.echo(
            f"  kept-aside sentiment ({held['sentiment']['rows']}): macro-F1 VADER "
            f"{held['sentiment']['vader']['macro_f1']:.3f}, "
            f"model {held['sentiment']['model']['macro_f1']:.3f}"
        )
    if "topic" in held:
        click.echo(f"  kept-aside topics ({held['topic']['rows']}): NMI {held['topic']['nmi']:.3f}")


def _show_history(root: Path, as_json: bool) -> None:
    from models.experiments import ExperimentLog, format_history

    runs = ExperimentLog(root).runs()
    if as_json:
        click.echo(json.dumps(runs, indent=2))
    else:
        click.echo(format_history(runs))
