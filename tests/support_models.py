"""Real ONNX models for tests: a scikit-learn classifier on the factory's seven features,
converted with skl2onnx (input "input" [None, 7], outputs "label" and "probabilities").

    artifact = build_model(seed=1)
    store.put(artifact.key("machine-failure", 1), artifact.data)
    target = artifact.target(store, name="machine-failure", version=1)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
from millrace_common.contracts import AliasTarget, ModelSchema, SiteManifest
from millrace_common.objectstore import ObjectStore, sha256_hex
from millrace_common.scoring import describe_session, open_session

FACTORY_FEATURES = [
    "temperature_mean_10m",
    "temperature_max_10m",
    "vibration_mean_10m",
    "vibration_std_10m",
    "pressure_mean_10m",
    "speed_last",
    "readings_10m",
]


@dataclass(frozen=True)
class ModelArtifact:
    data: bytes
    schema: ModelSchema

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @staticmethod
    def key(name: str, version: int) -> str:
        return f"models/{name}/{version}/model.onnx"

    def target(
        self,
        store: ObjectStore,
        *,
        name: str,
        version: int,
        alias: str = "production",
        sha256: str | None = None,
    ) -> AliasTarget:
        """The alias target of this model as if uploaded at its standard key in ``store``."""
        return AliasTarget(
            name=name,
            version=version,
            alias=alias,
            artifact_uri=store.uri(self.key(name, version)),
            sha256=sha256 or self.sha256,
            size=len(self.data),
            model_schema=self.schema,
        )


@lru_cache(maxsize=8)
def build_model(*, seed: int = 0) -> ModelArtifact:
    """A small fitted classifier; different seeds give different (valid) models."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, len(FACTORY_FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] + rng.normal(scale=0.3, size=200) > 0).astype(np.int64)
    classifier = LogisticRegression(max_iter=200).fit(x, y)
    onx = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, 7]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    data = onx.SerializeToString()
    inputs, outputs = describe_session(open_session(data))
    schema = ModelSchema(
        features=list(FACTORY_FEATURES), inputs=inputs, outputs=outputs, task="classification"
    )
    return ModelArtifact(data=data, schema=schema)


def deploy_to_site(
    store: ObjectStore, *, site: str, name: str, version: int = 1, seed: int = 1
) -> AliasTarget:
    """What the registry does for a site: the artifact, then the site's manifest naming it."""
    artifact = build_model(seed=seed)
    store.put(artifact.key(name, version), artifact.data)
    target = artifact.target(store, name=name, version=version)
    manifest = SiteManifest(site=site, updated_at=datetime.now(UTC), models=[target])
    store.put(f"sites/{site}/manifest.json", manifest.model_dump_json(by_alias=True).encode())
    return target


def instance(value: float = 0.5) -> dict[str, float]:
    """One valid request instance (every factory feature set to ``value``)."""
    return dict.fromkeys(FACTORY_FEATURES, value)
