"""The HTTP API's request and response bodies as pydantic models: FastAPI validates with them and
``/docs`` shows them as the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from fer_core.data import FACE_SIZE
from fer_core.model_card import ModelCard

Pixel = Annotated[int, Field(ge=0, le=255)]
FaceRow = Annotated[list[Pixel], Field(min_length=FACE_SIZE, max_length=FACE_SIZE)]
FaceArray = Annotated[list[FaceRow], Field(min_length=FACE_SIZE, max_length=FACE_SIZE)]


class Face(BaseModel):
    """One face: the same values as a face of ``predict --jsonl``."""

    face: int = Field(description="number of the face in its image, from 1, left to right")
    box: list[int] = Field(description="x, y, width, height in the image's pixels", min_length=4, max_length=4)
    label: str = Field(description="the most probable class")
    confidence: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="every class's calibrated probability")


class ImageResult(BaseModel):
    """One input of a request: its faces, or why it was not analysed."""

    name: str = Field(description="the file name it was sent under (faces[i] for an array)")
    status: Literal["ok", "error"]
    error: str | None = Field(description="what was wrong with it (status error), else null")
    faces: list[Face]


class AnalyzeResponse(BaseModel):
    model: str = Field(description="the name of the model that classified the faces")
    labels: list[str] = Field(description="the classes of the probabilities, in order")
    images: list[ImageResult] = Field(description="one result per input, in the order they were sent")


class ClassifyRequest(BaseModel):
    """Already-cropped faces as 48×48 arrays of gray values (0-255), as a JSON body."""

    faces: list[FaceArray] = Field(min_length=1, description="a batch of 48×48 gray faces")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer; a 5xx names no internal detail."""

    error: str = Field(description="what was wrong, for a person")
    code: str = Field(description="a stable name for programs (body_too_large, unsupported_media_type, ...)")


class ModelInfo(BaseModel):
    """A shipped model as its card describes it."""

    alias: str = Field(description="the value of the model query parameter that selects it")
    name: str
    labels: list[str]
    architecture: str | None
    parameters: int | None
    size_mb: float | None
    tta: str = Field(description="test-time augmentation applied with tta=true")
    accuracy: float | None = Field(description="validation (PublicTest) accuracy with its test-time augmentation")
    accuracy_no_tta: float | None
    macro_f1: float | None
    ece: float | None = Field(description="expected calibration error after temperature scaling")
    runtime: str = Field(description="what classifies: the exported model's runtime and precision, or keras")

    @classmethod
    def from_card(cls, alias: str, card: ModelCard) -> ModelInfo:
        validation, export = card.validation, card.export
        runtime = f"{export.runtime} {export.precision}" if card.exported_model_path is not None else "keras"
        return cls(alias=alias, name=card.name, labels=list(card.labels), architecture=card.architecture,
                   parameters=card.parameters, size_mb=card.data.get("size_mb"), tta=card.tta,
                   accuracy=validation.get("accuracy"), accuracy_no_tta=validation.get("accuracy_no_tta"),
                   macro_f1=validation.get("macro_f1"), ece=validation.get("ece"), runtime=runtime)


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool = Field(description="whether the models are loaded")
    in_flight: int = Field(description="requests being analysed now")
    max_in_flight: int = Field(description="the budget max_in_flight_requests; more get 503")
