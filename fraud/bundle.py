"""A model bundle: everything needed to score a transaction the way the nightly job meant.

    bundle.predict_proba(features)   calibrated probability of fraud
    bundle.decide(features)          approve / review / decline
    bundle.reasons(features, k=3)    the features that pushed each score up most

It holds the trained candidate, the calibration, the thresholds and the feature spec, and
is saved to / loaded from the registry as plain files (model in its library's format,
JSON for the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import Calibrator
from .features.spec import FeatureSpec
from .models import Candidate
from .policy import Thresholds


@dataclass
class ModelBundle:
    model: Candidate
    calibrator: Calibrator
    thresholds: Thresholds
    spec: FeatureSpec
    metadata: dict = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        return self.spec.names

    def _matrix(self, features) -> np.ndarray:
        """Feature values in the spec's column order, as a float matrix. A DataFrame is
        selected by name; a numpy array must already be in ``feature_names`` order (the
        serving path builds it that way and skips pandas, which costs milliseconds a row)."""
        if isinstance(features, np.ndarray):
            if features.ndim != 2 or features.shape[1] != len(self.feature_names):
                raise ValueError(f"expected a (n, {len(self.feature_names)}) matrix, got {features.shape}")
            values = features
        else:
            missing = [n for n in self.feature_names if n not in features.columns]
            if missing:
                raise ValueError(f"features are missing columns the model needs: {missing}")
            values = features[self.feature_names].to_numpy(dtype=np.float64)
        infinite = np.isinf(values)
        if infinite.any():  # NaN means missing to the model; inf means a feature definition is wrong
            row, col = np.argwhere(infinite)[0]
            raise ValueError(f"feature {self.feature_names[col]!r} is infinite in row {row}; features must be "
                             "finite or NaN (missing)")
        return values

    def matrix_from_records(self, records: list[dict]) -> np.ndarray:
        """Rows of feature dicts (the online path's output) -> the model's matrix."""
        names = self.feature_names
        return np.array([[r[n] for n in names] for r in records], dtype=np.float64)

    def raw_proba(self, features) -> np.ndarray:
        return self.model.predict_proba(self._matrix(features))

    def predict_proba(self, features) -> np.ndarray:
        """Calibrated probability of fraud for each row."""
        return self.calibrator.predict(self.raw_proba(features))

    def decide(self, features, scores: np.ndarray | None = None) -> np.ndarray:
        return self.thresholds.decide(self.predict_proba(features) if scores is None else scores)

    def reasons(self, features, k: int = 3, exact: bool = True) -> list[list[dict]]:
        """Per row, the k features with the largest positive contribution to the margin
        (``exact=False``: the cheaper path attribution, for the request path)."""
        values = self._matrix(features)
        contrib = self.model.contributions(values, exact=exact)
        top = np.argsort(-contrib, axis=1)[:, :k]
        names = np.asarray(self.feature_names)
        out = []
        for i in range(contrib.shape[0]):
            out.append([{"feature": names[j], "value": _finite(values[i, j]),
                         "contribution": float(contrib[i, j])} for j in top[i] if contrib[i, j] > 0])
        return out

    # -- files -------------------------------------------------------------------------
    def write(self, directory: Path) -> list[Path]:
        """Write the bundle's files into ``directory``; returns every path written."""
        directory.mkdir(parents=True, exist_ok=True)
        files = self.model.save(directory)
        for name, payload in (("calibration.json", self.calibrator.to_dict()),
                              ("thresholds.json", self.thresholds.to_dict()),
                              ("feature_spec.json", self.spec.to_dict()),
                              ("bundle.json", self.metadata)):
            path = directory / name
            path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
            files.append(path)
        return files

    @classmethod
    def read(cls, directory: Path) -> "ModelBundle":
        def load(name):
            return json.loads((directory / name).read_text())

        return cls(model=Candidate.load(directory), calibrator=Calibrator.from_dict(load("calibration.json")),
                   thresholds=Thresholds.from_dict(load("thresholds.json")),
                   spec=FeatureSpec.from_dict(load("feature_spec.json")), metadata=load("bundle.json"))


def _finite(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
