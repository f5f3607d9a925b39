"""Models brought by their users: an ONNX file the registry takes in, stores under a key it
owns, hashes and opens itself, with optional sample predictions for a parity check. An
upload is not a version yet: the trainer evaluates it on a fresh holdout snapshot of the
model's feature set (``TrainRequest.upload_id``) and registers the version ``ready`` or
``rejected`` with the reason, through the same promotion rule as a trained one."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import IO, Annotated

import structlog
from millrace_common.contracts import TensorSpec
from millrace_common.errors import InvalidInput, NotFound
from millrace_common.objectstore import ObjectStore
from millrace_common.scoring import LoadFailed, describe_session, open_session
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from millrace_registry.names import check_name

log = structlog.get_logger(__name__)
CHUNK = 1024 * 1024
MAX_SAMPLES = 10_000
UploadId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]

Cell = float | int | bool | str | None


class Samples(BaseModel):
    """Rows the model was given and what it answered where it was built: the trainer runs
    the uploaded file on the same rows and rejects it when the answers differ."""

    model_config = ConfigDict(extra="forbid")
    rows: list[list[float | None] | dict[str, float | None]] = Field(
        min_length=1, max_length=MAX_SAMPLES
    )
    """Feature values in the feature set's order, or objects keyed by feature name (null:
    missing)."""
    predictions: list[Cell] = Field(min_length=1, max_length=MAX_SAMPLES)
    """A class label or a value per row."""
    probabilities: list[list[float]] | None = None
    """Classifiers: the class probabilities per row, when the model gives them."""


class Upload(BaseModel):
    """An uploaded model file as the registry stored it."""

    model_config = ConfigDict(extra="forbid")
    upload_id: UploadId
    name: str
    filename: str
    sha256: str
    size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    samples: int = Field(description="rows of sample predictions for the parity check")
    description: str
    uploaded_by: str
    uploaded_at: datetime
    artifact_uri: str = Field(description="where the trainer reads it (the registry's store)")
    samples_uri: str | None = Field(description="where the trainer reads the samples, if any")


def upload_prefix(name: str, upload_id: str) -> str:
    return f"models/{name}/uploads/{upload_id}"


class Uploads:
    def __init__(self, store: ObjectStore, *, max_bytes: int) -> None:
        self._store = store
        self._max_bytes = max_bytes

    def take(
        self,
        *,
        name: str,
        model: IO[bytes],
        filename: str,
        samples: bytes | None,
        description: str,
        actor: str,
    ) -> Upload:
        """Read, hash and open the file, check the samples' shape, store both: the
        ``Upload``; ``InvalidInput`` naming the part that is wrong, with nothing stored."""
        check_name(name, field="name")
        data, sha256 = self._read(model)
        try:
            session = open_session(data)
        except LoadFailed as exc:
            raise InvalidInput(
                f"{filename} is not a usable ONNX model: {exc.message}", field="model"
            ) from None
        inputs, outputs = describe_session(session)
        parsed = _samples(samples)
        upload_id = uuid.uuid4().hex
        prefix = upload_prefix(name, upload_id)
        self._store.put(f"{prefix}/model.onnx", data)
        if parsed is not None:
            self._store.put(
                f"{prefix}/samples.json",
                parsed.model_dump_json().encode(),
                content_type="application/json",
            )
        upload = Upload(
            upload_id=upload_id,
            name=name,
            filename=filename,
            sha256=sha256,
            size=len(data),
            inputs=inputs,
            outputs=outputs,
            samples=0 if parsed is None else len(parsed.rows),
            description=description,
            uploaded_by=actor,
            uploaded_at=datetime.now(UTC),
            artifact_uri=self._store.uri(f"{prefix}/model.onnx"),
            samples_uri=None if parsed is None else self._store.uri(f"{prefix}/samples.json"),
        )
        # written last: an upload is there once its document is
        document = upload.model_dump_json().encode()
        self._store.put(f"{prefix}/upload.json", document, content_type="application/json")
        log.info("model_uploaded", model=name, upload_id=upload_id, size=len(data), sha256=sha256)
        return upload

    def get(self, *, name: str, upload_id: str) -> Upload:
        try:
            data = self._store.get(f"{upload_prefix(name, upload_id)}/upload.json")
        except NotFound:
            raise NotFound(f"model '{name}' has no upload {upload_id}", field="upload_id") from None
        return Upload.model_validate_json(data)

    def _read(self, model: IO[bytes]) -> tuple[bytes, str]:
        digest, parts, size = hashlib.sha256(), list[bytes](), 0
        while chunk := model.read(CHUNK):
            size += len(chunk)
            if size > self._max_bytes:
                raise InvalidInput(
                    f"the model is larger than the registry takes ({self._max_bytes} bytes; "
                    "MILLRACE_REGISTRY_MAX_UPLOAD_BYTES)",
                    field="model",
                )
            digest.update(chunk)
            parts.append(chunk)
        if size == 0:
            raise InvalidInput("the model file is empty", field="model")
        return b"".join(parts), digest.hexdigest()


def _samples(raw: bytes | None) -> Samples | None:
    if raw is None or not raw.strip():
        return None
    try:
        samples = Samples.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"samples: {where}: {first['msg']}", field="samples") from None
    if len(samples.predictions) != len(samples.rows):
        raise InvalidInput(
            f"samples: {len(samples.rows)} rows but {len(samples.predictions)} predictions",
            field="samples",
        )
    if samples.probabilities is not None and len(samples.probabilities) != len(samples.rows):
        raise InvalidInput(
            f"samples: {len(samples.rows)} rows but {len(samples.probabilities)} probabilities",
            field="samples",
        )
    return samples
