"""MLflow records of a study: one parent run per study, one nested run per trial, the model.

Everything goes through ``MlflowClient`` with explicit run ids, so several worker processes
can record into one store. The registered model's alias (``champion``) moves only when a
new model beats the current champion's test score.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Any, Iterable, Mapping

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

STUDY_TAG = "automl_rnn.study"
ROLE_TAG = "automl_rnn.role"
PARENT_TAG = "mlflow.parentRunId"
WEIGHTS_PATH = "checkpoint"
WEIGHTS_FILE = "weights.pt"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class StudyTracker:
    """Records one study in MLflow.

    Args:
        uri: the tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``, ...).
        experiment: the experiment name; created when missing.
        study_name: tags the parent run, so that a resumed study reuses it.
    """

    def __init__(self, uri: str, experiment: str, study_name: str) -> None:
        mlflow.set_tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.study_name = study_name
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.parent_run_id: str | None = None

    def start_study(self, config: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Open (or reopen, for a resumed study) the parent run and log the config once."""
        existing = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{STUDY_TAG}` = '{self.study_name}' and tags.`{ROLE_TAG}` = 'study'",
            max_results=1,
        )
        if existing:
            self.parent_run_id = existing[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            return self.parent_run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.study_name,
            tags={STUDY_TAG: self.study_name, ROLE_TAG: "study", **tags},
        )
        self.parent_run_id = run.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in _flatten(config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.parent_run_id, params=params[start : start + 100])
        self.client.log_text(self.parent_run_id, json.dumps(config, indent=2, default=str), "config.json")
        return self.parent_run_id

    def attach_study(self, parent_run_id: str) -> None:
        """Record trials under an existing parent run (a worker process of ``search.n_workers``)."""
        self.parent_run_id = parent_run_id

    def start_trial(self, number: int, params: Mapping[str, Any]) -> str:
        """Open the nested run of trial ``number`` and log its parameters."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number}",
            tags={PARENT_TAG: self.parent_run_id, STUDY_TAG: self.study_name, ROLE_TAG: "trial",
                  "trial_number": str(number)},
        )
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    def end_trial(
        self,
        run_id: str,
        *,
        state: str,
        history: Iterable[Mapping[str, float]],
        reason: str | None = None,
        summary: Mapping[str, float] | None = None,
    ) -> None:
        """Log per-epoch metrics and the trial's outcome, then close its run.

        ``state`` is the Optuna state name (COMPLETE, PRUNED, FAIL); MLflow's run status is
        FINISHED, KILLED or FAILED accordingly.
        """
        now = _now_ms()
        metrics = [
            Metric(key, float(value), now, int(row["epoch"]))
            for row in history
            for key, value in row.items()
            if key != "epoch" and math.isfinite(value)
        ]
        metrics += [Metric(k, float(v), now, 0) for k, v in (summary or {}).items() if math.isfinite(v)]
        tags = [RunTag("state", state)] + ([RunTag("reason", reason[:5000])] if reason else [])
        for start in range(0, max(1, len(metrics)), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000], tags=tags if start == 0 else [])
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(run_id, status=status)

    def log_weights(self, run_id: str, state_dict: Mapping[str, Any]) -> None:
        """Store a trial's best weights with its run, for the final evaluation."""
        import torch

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, WEIGHTS_FILE)
            torch.save(dict(state_dict), path)
            self.client.log_artifact(run_id, path, WEIGHTS_PATH)

    def load_weights(self, run_id: str) -> dict[str, Any]:
        """The weights that ``log_weights`` stored with ``run_id``."""
        import torch

        with tempfile.TemporaryDirectory() as folder:
            path = self.client.download_artifacts(run_id, f"{WEIGHTS_PATH}/{WEIGHTS_FILE}", folder)
            return torch.load(path, map_location="cpu", weights_only=True)

    def log_study_metrics(self, metrics: Mapping[str, float], run_id: str | None = None) -> None:
        """Log summary numbers (best value, counts, test score) on the parent run or ``run_id``."""
        target = run_id or self.parent_run_id
        now = _now_ms()
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        if batch:
            self.client.log_batch(target, metrics=batch)

    def log_pareto_front(self, front: list[Mapping[str, Any]]) -> None:
        """Log a multi-objective study's Pareto front on the parent run: ``pareto_front.json``
        (one entry per trial), the metric and tag ``pareto_front_size``."""
        self.client.log_text(self.parent_run_id, json.dumps(front, indent=2, default=str), "pareto_front.json")
        self.log_study_metrics({"pareto_front_size": len(front)})
        self.client.set_tag(self.parent_run_id, "pareto_front_size", str(len(front)))

    def end_study(self, status: str = "FINISHED") -> None:
        """Close the parent run (FINISHED, KILLED on interrupt, FAILED on error)."""
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)


def champion_score(client: MlflowClient, model_name: str, alias: str) -> tuple[float, str] | None:
    """The current champion's test score and direction, or None when there is none."""
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException:
        return None
    score = version.tags.get("test_score")
    return (float(score), version.tags.get("direction", "maximize")) if score is not None else None


def beats(new: float, old: float, direction: str) -> bool:
    """True when ``new`` is strictly better than ``old`` in ``direction``."""
    return new > old if direction == "maximize" else new < old
