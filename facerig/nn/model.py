"""Packaged models: the network's weights in two formats plus a metadata file.

A packaged model is a directory (SPEC §3 "Packaging"):

- ``model.pt``: the :class:`facerig.nn.network.RigNetwork` compiled with ``torch.jit.script``; its exported
  ``encode(vertices, operators)`` and ``deform(encoded, activations)`` methods are all a caller needs, and it
  loads without facerig's network code (the product promise for other tools).
- ``weights.pt``: the same network as a plain ``state_dict`` (tensors only, read with ``weights_only=True``).
  With the config in ``model.json`` it rebuilds the network from :mod:`facerig.nn.network` (inference code, not
  the trainer). TorchScript is deprecated in torch 2.13; this format does not depend on it, and the loader
  prefers it when present.
- ``model.json``: format version, model id (SHA-256 of the ``model.pt`` bytes), the weights file's SHA-256,
  network config, the ordered FACS action names of the activation vector, canonical-frame constants and
  training provenance.

Loading checks the format version and that each file hashes to its recorded digest, so a truncated, swapped
or newer model fails with a clear :class:`~facerig.errors.ModelError` instead of a confusing tensor error
later. Both formats compute the same function (``tests/nn/test_model.py`` checks the bundled model's).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
import torch

from facerig.errors import ConfigError, ModelError
from facerig.fileio import write_bytes_atomic

if TYPE_CHECKING:
    from facerig.nn.network import NetworkConfig, RigNetwork
    from facerig.nn.operators import Operators

FORMAT = "facerig-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.pt"
WEIGHTS_FILE = "weights.pt"
METADATA_FILE = "model.json"
MODEL_FORMATS = ("weights", "torchscript")

# Chunking poses: on CPU, chunks of about this many (vertex, pose) pairs keep each activation tensor
# cache-sized, which measured faster than one big batch; every device also keeps the activations under
# the memory budget.
_CPU_VERTEX_POSES_PER_CHUNK = 16_384
_MEMORY_BUDGET_BYTES = 1 << 30

_OPERATOR_FLOAT_KEYS = ("mass", "evals", "evecs", "grad_x", "grad_y", "normals")
_OPERATOR_INDEX_KEYS = ("grad_rows", "grad_cols")
_METADATA_KEYS = {"action_names", "name", "canonical_frame", "gaze_degrees", "offset_floor", "training"}


class PackagedModel:
    """A loaded (or freshly initialised) rigging network with its metadata.

    Build one with :meth:`load` or :func:`fresh_model`; run it with :meth:`predict`.
    """

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        metadata: Mapping[str, Any],
        device: torch.device,
        source: Path | None = None,
    ) -> None:
        """Wrap a scripted network; ``metadata`` is the parsed ``model.json`` document, ``source`` its directory."""
        self.module = module.eval()
        self.metadata = dict(metadata)
        self.device = device
        self.source = source

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", prefer: str = "weights") -> "PackagedModel":
        """Load a packaged model from its directory (or from its ``model.pt``, with ``model.json`` beside it).

        Args:
            path: the model directory or its ``model.pt``.
            device: where the model runs ("auto", "cpu", "cuda", "mps" or a ``torch.device``).
            prefer: "weights" (the default: ``weights.pt`` when the model has one, else TorchScript) or
                "torchscript" (``model.pt`` always).

        Raises:
            ModelError: a file is missing or unreadable, the metadata is malformed, the model was written by
                a newer facerig, or a file does not match its recorded digest.
        """
        if prefer not in MODEL_FORMATS:
            raise ConfigError(f"unknown model format {prefer!r}; use one of {', '.join(MODEL_FORMATS)}")
        path = Path(path)
        directory = path.parent if path.suffix == ".pt" else path
        pt_path = path if path.suffix == ".pt" else path / MODEL_FILE
        json_path = pt_path.with_suffix(".json") if path.suffix == ".pt" else directory / METADATA_FILE
        if not pt_path.is_file() or not json_path.is_file():
            missing = pt_path if not pt_path.is_file() else json_path
            raise ModelError(f"no packaged model here: {missing.name} is missing", directory)
        metadata = _read_metadata(json_path)
        device = select_device(device) if isinstance(device, str) else device
        if prefer == "weights" and "weights" in metadata:
            return cls(_load_weights(directory, metadata, device), metadata, device, source=directory)
        payload = pt_path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != metadata["model_id"]:
            raise ModelError(f"corrupt model: {pt_path.name} does not match the model id in {json_path.name}", pt_path)
        try:
            # Loaded from the bytes that were hashed, so the file cannot change between check and load.
            with _torchscript_deprecation_ignored():
                module = torch.jit.load(io.BytesIO(payload), map_location=device)
        except Exception as error:  # torch raises RuntimeError, ValueError, ... for damaged archives
            raise ModelError(f"cannot load the TorchScript network: {error}", pt_path) from None
        for method in ("encode", "deform"):
            if not hasattr(module, method):
                raise ModelError(f"the TorchScript network has no {method}() method", pt_path)
        return cls(module, metadata, device, source=directory)

    # ------------------------------------------------------------------------------------------ metadata
    @property
    def model_id(self) -> str:
        """SHA-256 hex digest of the serialized TorchScript network."""
        return str(self.metadata["model_id"])

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "unnamed"))

    @property
    def format(self) -> str:
        """Which file the network was loaded from: "weights" or "torchscript"."""
        return "torchscript" if isinstance(self.module, torch.jit.ScriptModule) else "weights"

    @property
    def config(self) -> dict[str, Any]:
        """The network configuration as a plain dict (:meth:`NetworkConfig.to_dict`)."""
        return dict(self.metadata["network"]["config"])

    @property
    def k_eig(self) -> int:
        """Eigenpairs the network uses; operators must provide at least this many (or all a tiny mesh has)."""
        return int(self.config["k_eig"])

    @property
    def gaze_degrees(self) -> float:
        """The eye turn of a full EyesLook in the model's training data (:data:`facerig.anatomy.eyes.GAZE_DEGREES` when
        the model does not say: every facerig dataset before the angle was recorded used it)."""
        from facerig.anatomy.eyes import GAZE_DEGREES

        return float(self.metadata.get("gaze_degrees", GAZE_DEGREES))

    @property
    def offset_floor(self) -> float:
        """The network's noise floor on still vertices, in canonical units (0 when the model does not say):
        the rig shrinks every predicted offset by it (:func:`facerig.rigging.pipeline.shrink_offsets`)."""
        return float(self.metadata.get("offset_floor", 0.0))

    @property
    def rig_settings(self) -> dict[str, float]:
        """What the rig reads from ``model.json`` besides the weights (they change a rig; the model id does not
        cover them): a batch's resume key includes them."""
        return {"gaze_degrees": self.gaze_degrees, "offset_floor": self.offset_floor}

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the activation vector's columns, in order."""
        return tuple(self.metadata["vocabulary"]["action_names"])

    @property
    def n_parameters(self) -> int:
        return int(self.metadata["network"]["n_parameters"])

    # ------------------------------------------------------------------------------------------ running
    def align_activations(self, activations: np.ndarray, action_names: Sequence[str]) -> np.ndarray:
        """Reorder activation columns named ``action_names`` into this model's column order.

        Args:
            activations: (R, A) float activations whose columns are named by ``action_names``.
            action_names: A names.

        Returns:
            (R, P) float32 in :attr:`action_names` order; model actions not named are zero.

        Raises:
            ModelError: an action the model does not know (its output would silently ignore it).
        """
        activations = np.asarray(activations, dtype=np.float32)
        names = tuple(action_names)
        if activations.ndim != 2 or activations.shape[1] != len(names):
            raise ModelError(f"activations of shape {activations.shape} do not match {len(names)} action names")
        if names == self.action_names:
            return activations
        column = {name: i for i, name in enumerate(self.action_names)}
        unknown = [name for name in names if name not in column]
        if unknown:
            raise ModelError(f"model {self.name!r} does not know the actions {unknown}", self.source)
        aligned = np.zeros((len(activations), len(column)), np.float32)
        aligned[:, [column[name] for name in names]] = activations
        return aligned

    def chunk_size(self, n_vertices: int, n_poses: int) -> int:
        """Poses per :meth:`predict` pass for a mesh of ``n_vertices``: memory-bounded, cache-sized on CPU."""
        per_pose = n_vertices * int(self.metadata["network"]["bytes_per_vertex_pose"])
        chunk = max(1, _MEMORY_BUDGET_BYTES // max(per_pose, 1))
        if self.device.type == "cpu":
            chunk = min(chunk, max(1, _CPU_VERTEX_POSES_PER_CHUNK // max(n_vertices, 1)))
        return int(min(chunk, max(n_poses, 1)))

    def predict(
        self,
        vertices: np.ndarray,
        operators: "Operators | Mapping[str, Any]",
        activations: np.ndarray,
        chunk_size: int | None = None,
    ) -> np.ndarray:
        """Per-vertex displacements for every activation row.

        The neutral-only work (:meth:`encode`) runs once; poses run in chunks of ``chunk_size``.

        Args:
            vertices: (V, 3) float canonical-frame neutral positions.
            operators: an :class:`~facerig.nn.operators.Operators` or its :meth:`to_torch` dict.
            activations: (B, P) float activations in :attr:`action_names` order.
            chunk_size: poses per pass; None picks :meth:`chunk_size`.

        Returns:
            (B, V, 3) float32 canonical-frame displacements.
        """
        activations_t = torch.as_tensor(np.asarray(activations, dtype=np.float32), device=self.device)
        n_actions = len(self.action_names)
        if activations_t.ndim != 2 or activations_t.shape[1] != n_actions:
            raise ModelError(f"activations must be (B, {n_actions}), got {tuple(activations_t.shape)}", self.source)
        encoded = self.encode(vertices, operators)
        n_vertices, n_poses = int(encoded["x0"].shape[0]), int(activations_t.shape[0])
        chunk = chunk_size if chunk_size is not None else self.chunk_size(n_vertices, n_poses)
        if chunk < 1:
            raise ModelError(f"chunk_size must be at least 1, got {chunk}")
        result = np.empty((n_poses, n_vertices, 3), np.float32)
        with torch.inference_mode():
            for start in range(0, n_poses, chunk):
                deltas = self.module.deform(encoded, activations_t[start : start + chunk])
                result[start : start + chunk] = deltas.cpu().numpy()
        return result

    def encode(self, vertices: np.ndarray, operators: "Operators | Mapping[str, Any]") -> dict[str, torch.Tensor]:
        """The network's per-mesh encoding (input of ``module.deform``), computed under inference mode."""
        vertices_t = torch.as_tensor(np.asarray(vertices, dtype=np.float32), device=self.device)
        tensors = self._operator_tensors(operators)
        n_vertices = vertices_t.shape[0]
        if vertices_t.ndim != 2 or vertices_t.shape[1] != 3:
            raise ModelError(f"vertices must be (V, 3), got {tuple(vertices_t.shape)}")
        if tensors["mass"].shape != (n_vertices,) or tensors["evecs"].shape[0] != n_vertices:
            raise ModelError(
                f"operators are for {tensors['mass'].shape[0]} vertices but the mesh has {n_vertices}"
            )
        available = int(tensors["evals"].shape[0])
        if available < min(self.k_eig, n_vertices):
            raise ModelError(f"the model needs {self.k_eig} eigenpairs, the operators have {available}")
        with torch.inference_mode():
            return self.module.encode(vertices_t, tensors)

    def _operator_tensors(self, operators: "Operators | Mapping[str, Any]") -> dict[str, torch.Tensor]:
        raw = operators.to_torch() if hasattr(operators, "to_torch") else operators
        missing = [key for key in _OPERATOR_FLOAT_KEYS + _OPERATOR_INDEX_KEYS if key not in raw]
        if missing:
            raise ModelError(f"operators lack {missing}")
        tensors = {key: torch.as_tensor(raw[key]).to(self.device, torch.float32) for key in _OPERATOR_FLOAT_KEYS}
        tensors.update({key: torch.as_tensor(raw[key]).to(self.device, torch.int64) for key in _OPERATOR_INDEX_KEYS})
        return tensors


# ---------------------------------------------------------------------------------------------- writing
def save_packaged(network: "RigNetwork", directory: str | Path, metadata: Mapping[str, Any]) -> Path:
    """Script ``network`` and write ``model.pt`` and ``model.json`` into ``directory``.

    Each file is written atomically, ``model.pt`` first: a crash in between leaves a ``model.json`` whose id
    does not match, which :meth:`PackagedModel.load` reports as corrupt rather than loading a mismatched pair.

    Args:
        network: the trained network (left unchanged; its training mode is not touched).
        directory: output directory, created if needed.
        metadata: "action_names" (required, the P column names of the activation vector), and optionally
            "name", "canonical_frame" (dict of the frame constants the network was trained with),
            "gaze_degrees" (the eye turn of a full EyesLook in the training data, used by the rig),
            "offset_floor" (canonical units, see :attr:`PackagedModel.offset_floor`) and
            "training" (dict of provenance: dataset, stages, steps, config, git revision, ...).

    Returns:
        The directory.
    """
    directory = Path(directory)
    payload = _script_bytes(network)
    weights = weights_bytes(network)
    document = _metadata_document(network, payload, metadata, directory)
    document["weights"] = {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest()}
    write_bytes_atomic(directory / MODEL_FILE, payload)
    write_bytes_atomic(directory / WEIGHTS_FILE, weights)
    write_bytes_atomic(directory / METADATA_FILE, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())
    return directory


def weights_bytes(network: torch.nn.Module) -> bytes:
    """The network's ``state_dict`` as ``torch.save`` bytes (tensors only, CPU, readable with
    ``weights_only=True``); a TorchScript module's state dict has the same keys as the eager network's."""
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in network.state_dict().items()}, buffer)
    return buffer.getvalue()


def _load_weights(directory: Path, metadata: Mapping[str, Any], device: torch.device) -> torch.nn.Module:
    """The eager :class:`facerig.nn.network.RigNetwork` from ``weights.pt`` and the config in ``metadata``."""
    from facerig.nn.network import NetworkConfig, RigNetwork

    entry = metadata["weights"]
    if not isinstance(entry, Mapping) or not isinstance(entry.get("sha256"), str):
        raise ModelError("model metadata's weights entry has no sha256", directory / METADATA_FILE)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelError(f"no packaged model here: {WEIGHTS_FILE} is missing", directory)
    payload = weights_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != entry["sha256"]:
        raise ModelError(f"corrupt model: {WEIGHTS_FILE} does not match its digest in {METADATA_FILE}", weights_path)
    try:
        state = torch.load(io.BytesIO(payload), map_location=device, weights_only=True)
        network = RigNetwork(NetworkConfig.from_dict(metadata["network"]["config"]))
        network.load_state_dict(state)
    except Exception as error:  # damaged archive, wrong keys or shapes: all one answer for the user
        raise ModelError(f"cannot load the network weights: {error}", weights_path) from None
    return network.to(device).eval()


def fresh_model(
    config: "NetworkConfig | None" = None,
    seed: int = 0,
    action_names: Sequence[str] | None = None,
    output_init_std: float | None = None,
    device: str | torch.device = "cpu",
) -> PackagedModel:
    """A randomly initialised network, scripted in memory, for tests and before a trained model exists.

    Args:
        config: architecture; ``NetworkConfig.default()`` when None.
        seed: torch seed of the initialisation (the global RNG state is left untouched).
        action_names: the activation columns; the default vocabulary's actions when None.
        output_init_std: overrides ``config.output_init_std``, e.g. 0.1 for visible responses in tests.
        device: where the model runs.
    """
    import dataclasses

    from facerig.nn.network import NetworkConfig, RigNetwork

    config = config or NetworkConfig.default()
    if output_init_std is not None:
        config = dataclasses.replace(config, output_init_std=output_init_std)
    if action_names is None:
        from facerig.vocabulary import load_vocabulary

        action_names = load_vocabulary().action_names
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = RigNetwork(config)
    payload = _script_bytes(network)
    metadata = {"action_names": list(action_names), "name": f"fresh-seed{seed}", "training": {"trained": False}}
    document = _metadata_document(network, payload, metadata, None)
    device = select_device(device) if isinstance(device, str) else device
    with _torchscript_deprecation_ignored():
        module = torch.jit.load(io.BytesIO(payload), map_location=device)
    return PackagedModel(module, document, device)


def default_model_path() -> Path:
    """Directory of the model that ships inside the facerig package."""
    return Path(__file__).resolve().parents[1] / "models" / "default"


def select_device(name: str = "auto") -> torch.device:
    """"auto" (CUDA, then Apple MPS, then CPU), "cpu", "cuda" or "mps" as a ``torch.device``.

    Raises:
        ConfigError: an unknown name, or an accelerator that this machine does not have.
    """
    name = name.lower()
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device {name!r} was requested but is not available on this machine")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _torchscript_deprecation_ignored() -> Iterator[None]:
    """Silence torch >= 2.13's DeprecationWarning on torch.jit.script/save/load.

    TorchScript is still the format the spec fixes (a self-contained archive that loads without Python model
    code, on CPU, CUDA and MPS); its successor, torch.export, is a format change for a later version.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def _script_bytes(network: "RigNetwork") -> bytes:
    with _torchscript_deprecation_ignored():
        scripted = torch.jit.script(network)
        scripted.eval()  # a separate module object: the caller's network keeps its own mode
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def _metadata_document(
    network: "RigNetwork", payload: bytes, metadata: Mapping[str, Any], directory: Path | None
) -> dict[str, Any]:
    from facerig.version import __version__
    from facerig.nn.network import count_parameters

    unknown = set(metadata) - _METADATA_KEYS
    if unknown:
        raise ModelError(f"unknown model metadata keys {sorted(unknown)}; allowed: {sorted(_METADATA_KEYS)}", directory)
    config = network.config
    action_names = [str(name) for name in metadata.get("action_names", ())]
    if len(action_names) != config.n_actions or len(set(action_names)) != len(action_names):
        raise ModelError(
            f"metadata must name {config.n_actions} distinct actions, got {len(action_names)}", directory
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": hashlib.sha256(payload).hexdigest(),
        "name": str(metadata.get("name", "unnamed")),
        "network": {
            "class": type(network).__name__,
            "config": config.to_dict(),
            "n_parameters": count_parameters(network),
            "bytes_per_vertex_pose": config.bytes_per_vertex_pose,
        },
        "vocabulary": {"action_names": action_names},
        "canonical_frame": dict(metadata.get("canonical_frame", {})),
        **({"gaze_degrees": float(metadata["gaze_degrees"])} if "gaze_degrees" in metadata else {}),
        **({"offset_floor": float(metadata["offset_floor"])} if "offset_floor" in metadata else {}),
        "training": dict(metadata.get("training", {})),
        "created_with": {"facerig": __version__, "torch": torch.__version__},
    }


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"unreadable model metadata: {error}", path) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelError(f"not a facerig model metadata file (format is not {FORMAT!r})", path)
    version = document.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelError(f"invalid format_version {version!r}", path)
    if version > FORMAT_VERSION:
        raise ModelError(
            f"written by a newer facerig (model format {version}, this facerig reads up to {FORMAT_VERSION}); "
            "upgrade facerig",
            path,
        )
    try:
        names = document["vocabulary"]["action_names"]
        config = document["network"]["config"]
        fields = (config["k_eig"], config["n_actions"], document["network"]["bytes_per_vertex_pose"])
        model_id = document["model_id"]
    except (KeyError, TypeError) as error:
        raise ModelError(f"model metadata is missing the field {error}", path) from None
    if not all(isinstance(value, int) for value in fields) or not isinstance(model_id, str):
        raise ModelError("model metadata has a field of the wrong type", path)
    if not isinstance(names, list) or len(names) != config["n_actions"]:
        raise ModelError("model metadata's action names do not match the network's n_actions", path)
    return document
