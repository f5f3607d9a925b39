"""The factory classifier: one definition for the tests and the bench. A scikit-learn model
on the factory's seven features, converted with skl2onnx (input "input" [None, 7], outputs
"label" and "probabilities").

    artifact = build_model(seed=1)
    target = artifact.upload(store, name="machine-failure", version=1)
    event = published(target)

The bench fits the heavier kinds (``fit(seed=1, kind="mlp")``) and keeps the estimator for
MLServer; tests take the small cached logistic one from ``build_model``.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from millrace_common.contracts import AliasTarget, ModelPublished, ModelSchema, SiteManifest
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
Kind = Literal["logistic", "forest", "mlp"]
MLP_LAYERS = (1024, 1024, 1024, 1024)
ROWS: dict[Kind, int] = {"logistic": 200, "forest": 5000, "mlp": 1000}


@dataclass(frozen=True)
class ModelArtifact:
    data: bytes
    schema: ModelSchema
    estimator: Any = field(default=None, compare=False, repr=False)

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

    def upload(
        self,
        store: ObjectStore,
        *,
        name: str,
        version: int,
        alias: str = "production",
        sha256: str | None = None,
    ) -> AliasTarget:
        """Put the artifact at its standard key in ``store``; its alias target."""
        store.put(self.key(name, version), self.data)
        return self.target(store, name=name, version=version, alias=alias, sha256=sha256)


def fit(*, seed: int, kind: Kind = "logistic") -> ModelArtifact:
    """A fitted factory classifier; different seeds give different (valid) models.

    ``logistic`` scores one row in a few µs, so a request is mostly HTTP and Python;
    ``forest`` (200 trees, depth 12, fitted on 5 000 rows) is a tabular model of
    realistic size, yet one row takes ~10 µs and every further row adds to it (trees
    are walked row by row), so batching has little to share; ``mlp`` (4 dense hidden
    layers of 1 024) is the kind of model adaptive batching is for: one 1-row call
    costs more than a request's HTTP work, and 32 rows cost only a few times one row,
    because a batch turns matrix-vector products into one matrix-matrix product. The
    MLP is fitted for a few iterations only (seconds): the bench needs its cost, not
    its accuracy."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning

    rows = ROWS[kind]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FACTORY_FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 2] + rng.normal(scale=0.3, size=rows) > 0).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP: few iterations on purpose
        estimator = _estimator(kind).fit(x, y)
    onx = to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, len(FACTORY_FEATURES)]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=17,
    )
    data = onx.SerializeToString()
    inputs, outputs = describe_session(open_session(data))
    schema = ModelSchema(
        features=list(FACTORY_FEATURES), inputs=inputs, outputs=outputs, task="classification"
    )
    return ModelArtifact(data=data, schema=schema, estimator=estimator)


def _estimator(kind: Kind) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=MLP_LAYERS, max_iter=3, random_state=0)
    if kind == "forest":
        return RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0, n_jobs=1)
    return LogisticRegression(max_iter=200)


@lru_cache(maxsize=8)
def build_model(*, seed: int = 0) -> ModelArtifact:
    """The small logistic classifier of ``seed``, fitted once per test session."""
    return fit(seed=seed)


def published(
    target: AliasTarget, *, name: str | None = None, lineage_id: str = "test"
) -> ModelPublished:
    """The model-published event the registry sends for ``target`` (under ``name``)."""
    return ModelPublished(
        event_id=str(uuid.uuid4()),
        name=name or target.name,
        version=target.version,
        alias=target.alias,
        artifact_uri=target.artifact_uri,
        sha256=target.sha256,
        size=target.size,
        model_schema=target.model_schema,
        lineage_id=lineage_id,
        published_at=datetime.now(UTC),
    )


def deploy_to_site(
    store: ObjectStore,
    *,
    site: str,
    name: str,
    version: int = 1,
    seed: int = 1,
    data: bytes | None = None,
    sha256: str | None = None,
    claimed_site: str | None = None,
) -> AliasTarget:
    """What the registry does for a site: the artifact, then the site's manifest naming it.

    ``data`` stands in for the artifact's bytes under the seed's schema (a broken or
    hostile model), ``sha256`` for the digest the manifest claims, ``claimed_site`` for the
    site the manifest says it is for (a manifest misfiled under ``site``)."""
    artifact = build_model(seed=seed)
    body = artifact.data if data is None else data
    store.put(artifact.key(name, version), body)
    target = artifact.target(store, name=name, version=version).model_copy(
        update={"sha256": sha256 or sha256_hex(body), "size": len(body)}
    )
    manifest = SiteManifest(
        site=claimed_site or site, updated_at=datetime.now(UTC), models=[target]
    )
    store.put(f"sites/{site}/manifest.json", manifest.model_dump_json(by_alias=True).encode())
    return target


def instance(value: float = 0.5) -> dict[str, float]:
    """One valid request instance (every factory feature set to ``value``)."""
    return dict.fromkeys(FACTORY_FEATURES, value)


def file_reading_model(location: str, *, size: int) -> bytes:
    """A hostile model under the factory's tensor names: its one initializer keeps its
    ``size`` bytes in the file at ``location`` (ONNX external data), and each row's
    ``probabilities`` are those bytes, one per column. Opened naively, its predictions
    return the file."""
    from onnx import TensorProto, helper

    secret = TensorProto(name="secret", data_type=TensorProto.UINT8, dims=[size])
    secret.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        secret.external_data.add(key=key, value=value)
    constants = [
        helper.make_tensor("axes0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("axes1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    nodes = [
        helper.make_node("Cast", ["secret"], ["bytes"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["bytes", "axes0"], ["row"]),
        helper.make_node("ReduceSum", ["input", "axes1"], ["sums"], keepdims=1),
        helper.make_node("Mul", ["sums", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "row"], ["probabilities"]),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "reads-a-file",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, len(FACTORY_FEATURES)])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, size]),
        ],
        [secret, *constants],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()
