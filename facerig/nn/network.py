"""The rigging network: a FACS-conditioned DiffusionNet with a global encoder (SPEC §3).

Shape conventions: V vertices, K eigenpairs, B poses, C channels, H MLP hidden channels. Inside the network
per-vertex features are laid out **vertex-major**, ``(V, B, C)``: the spectral projection and reconstruction
are then single GEMMs over ``(V, B*C)`` and a per-pose vector broadcasts over vertices without copies.

Work is split by what it depends on:

- :meth:`RigNetwork.encode` runs once per neutral mesh: input features, the global encoder and its pooled
  vector G0, the spectral bases, and the whole pose-independent half of the first block.
- :meth:`RigNetwork.deform` runs per batch of poses: every block adds its conditioning ``[activations, G0]``
  as a per-pose ``(B, H)`` bias (``[x, c] @ W == x @ W_x + c @ W_c``), never a tiled ``(B, V, ·)`` tensor.

Spatial gradients use a shortcut that is exact, not an approximation: spectral diffusion reconstructs
``x_diff = Phi @ coefs``, so its tangent gradient is ``(G Phi) @ coefs``. ``G Phi`` (V, K) is formed once per
mesh in :meth:`encode` by ``index_add_`` over the gradient's COO entries; per pose batch, both gradient
components then come out of one dense ``(2V, K) @ (K, B*C)`` GEMM, measured more than 10x faster on CPU than
an ``index_add_`` sparse product. Likewise ``x_diff`` enters the block only through the first MLP layer, so
that layer's weights are applied to the (K, B, C) spectral coefficients before reconstruction.
Everything here compiles with ``torch.jit.script``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

import torch
from torch import Tensor, nn

from facerig.errors import ConfigError

INPUT_FEATURES = ("xyz", "normals", "hks", "fourier")
_HKS_TIMES = (1e-2, 1.0)  # log-spaced heat-kernel-signature times, canonical units (head ~1)
_DIFFUSION_TIME_INIT = (1e-3, 1e-1)  # initial per-channel diffusion times span this range, log-spaced
_BYTES_PER_FLOAT = 4
# Peak resident memory of a TorchScript deform() per (vertex, pose), in (V, B, max(C, H)) float32 tensors: measured
# 3.1 KB at width 32 on CPU (eager needs about a third of that).
_LIVE_TENSORS = 24


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of :class:`RigNetwork`. Stored in every packaged model's metadata."""

    width: int = 32  # C: channels of the main network's blocks
    n_blocks: int = 4  # conditional DiffusionNet blocks in the main network
    k_eig: int = 64  # eigenpairs used for spectral diffusion (extra operator eigenpairs are ignored)
    global_width: int = 32  # channels of the global encoder's blocks
    global_blocks: int = 2  # blocks of the global encoder (the method fixes 2)
    global_dim: int = 32  # size of the pooled global vector G0
    mlp_ratio: float = 1.0  # H = round(width * mlp_ratio): hidden channels of each block's MLP
    dropout: float = 0.0  # dropout between MLP layers while training
    n_actions: int = 47  # P: length of the FACS activation vector
    input_features: tuple[str, ...] = ("xyz", "normals", "hks")  # any of INPUT_FEATURES
    n_hks: int = 16  # heat-kernel-signature scales when "hks" is an input feature
    n_fourier: int = 6  # octaves of sin/cos(2^k pi xyz) when "fourier" is an input feature
    output_init_std: float = 1e-4  # std of the output layer's initial weights: near-zero displacements

    def __post_init__(self) -> None:
        positive = ("width", "n_blocks", "k_eig", "global_width", "global_blocks", "global_dim", "n_actions", "n_hks",
                    "n_fourier")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"NetworkConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.mlp_ratio <= 0 or not 0.0 <= self.dropout < 1.0 or self.output_init_std < 0:
            raise ConfigError("NetworkConfig needs mlp_ratio > 0, 0 <= dropout < 1 and output_init_std >= 0")
        unknown = set(self.input_features) - set(INPUT_FEATURES)
        if unknown or not self.input_features:
            raise ConfigError(f"NetworkConfig.input_features must be a non-empty subset of {INPUT_FEATURES}")
        object.__setattr__(self, "input_features", tuple(self.input_features))

    @property
    def hidden(self) -> int:
        """H, the hidden width of every block's MLP."""
        return max(1, round(self.width * self.mlp_ratio))

    @property
    def n_input_features(self) -> int:
        sizes = {"xyz": 3, "normals": 3, "hks": self.n_hks, "fourier": 6 * self.n_fourier}
        return sum(sizes[name] for name in self.input_features)

    @property
    def bytes_per_vertex_pose(self) -> int:
        """Peak activation memory of :meth:`RigNetwork.deform` per vertex and pose (for chunking poses)."""
        return _LIVE_TENSORS * max(self.width, self.hidden) * _BYTES_PER_FLOAT

    @classmethod
    def default(cls) -> "NetworkConfig":
        """The small, fast configuration (about 57 k parameters)."""
        return cls()

    @classmethod
    def paper(cls) -> "NetworkConfig":
        """The size of the published model: about 5.4 M parameters (widths are ours; the paper gives only the total)."""
        return cls(width=256, n_blocks=6, k_eig=128, global_width=128, global_dim=128, mlp_ratio=1.75)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        data = dataclasses.asdict(self)
        data["input_features"] = list(self.input_features)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown NetworkConfig keys: {sorted(unknown)}")
        values = dict(data)
        if "input_features" in values:
            values["input_features"] = tuple(values["input_features"])
        return cls(**values)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class DiffusionBlock(nn.Module):
    """One DiffusionNet block: learned spectral diffusion, gradient features, per-vertex MLP, residual.

    Split in two so that callers can add a per-pose bias to the MLP's first layer, and so that the first
    half can run once when its input does not depend on the pose:

    - :meth:`pre`: ``(V, N, C) -> (V, N, H)``, the first MLP layer applied to ``[x, x_diff, grad_features]``.
    - :meth:`post`: the rest of the MLP from that pre-activation, plus the residual.
    """

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.width = width
        lo, hi = _DIFFUSION_TIME_INIT
        # Time is exp(log_time): always positive, with a gradient everywhere (a clamp at 0 would block it).
        self.log_time = nn.Parameter(torch.linspace(math.log(lo), math.log(hi), width))
        # Complex-linear map A = A_re + i A_im over channels of the complex gradient (no bias: rotation-equivariant).
        self.rot_re = nn.Parameter(torch.empty(width, width))
        self.rot_im = nn.Parameter(torch.empty(width, width))
        bound = 1.0 / math.sqrt(width)
        nn.init.uniform_(self.rot_re, -bound, bound)
        nn.init.uniform_(self.rot_im, -bound, bound)
        self.lin_in = nn.Linear(3 * width, hidden)
        self.lin_mid = nn.Linear(hidden, hidden)
        self.lin_out = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)

    def pre(self, x: Tensor, proj: Tensor, recon: Tensor, evals: Tensor) -> Tensor:
        """First MLP layer of the block's features ``[x, x_diff, grad_features]``.

        Args:
            x: (V, N, C) features.
            proj: (K, V) ``(evecs * mass)^T``, the spectral projection.
            recon: (3V, K) ``[evecs; G_x evecs; G_y evecs]``: reconstruction and its tangent gradient.
            evals: (K,) eigenvalues.

        Returns:
            (V, N, H) pre-activation (bias included).
        """
        n_vertices, n_poses, width = x.shape
        hidden = self.lin_in.out_features
        coefs = proj @ x.reshape(n_vertices, n_poses * width)  # (K, N*C)
        decay = torch.exp(-evals[:, None] * torch.exp(self.log_time)[None, :])  # (K, C)
        coefs = coefs.view(-1, n_poses, width) * decay[:, None, :]  # (K, N, C)
        w_x, w_diff, w_grad = self.lin_in.weight.t().split(width, 0)  # (C, H) each

        # x_diff is only ever used through w_diff, so apply w_diff in the (small) spectral domain.
        out = torch.addmm(self.lin_in.bias, x.reshape(-1, width), w_x)  # (V*N, H)
        out.view(n_vertices, n_poses * hidden).addmm_(recon[:n_vertices], (coefs @ w_diff).view(-1, n_poses * hidden))

        # Tangent gradient of x_diff, as a complex number per channel: g = grad_x + i grad_y.
        grad = (recon[n_vertices:] @ coefs.view(-1, n_poses * width)).view(2, n_vertices * n_poses, width)
        a_re, a_im = self.rot_re.t(), self.rot_im.t()
        rotated = torch.mm(grad[0], torch.cat([a_re, a_im], 1))  # (V*N, 2C): [Re(A g), Im(A g)]
        rotated.addmm_(grad[1], torch.cat([-a_im, a_re], 1))
        # Re(conj(g) * (A g)) per channel: invariant to the choice of each vertex's tangent frame.
        # (fused in place: each pass over a (V*N, C) array is a fresh allocation and a pass over memory)
        grad_features = (grad[0] * rotated[:, :width]).addcmul_(grad[1], rotated[:, width:]).tanh_()  # (V*N, C)
        out.addmm_(grad_features, w_grad)
        return out.view(n_vertices, n_poses, hidden)

    def post(self, x: Tensor, pre: Tensor) -> Tensor:
        """Rest of the MLP plus the residual: ``x`` (V, N|1, C), ``pre`` (V, N, H) -> (V, N, C).

        ``pre`` is consumed: activated in place (each activation pass that allocates is a fresh (V, N, H) array).
        """
        hidden = self.dropout(torch.relu_(pre))
        hidden = self.dropout(torch.relu_(self.lin_mid(hidden)))
        return x + self.lin_out(hidden)

    def forward(self, x: Tensor, proj: Tensor, recon: Tensor, evals: Tensor) -> Tensor:
        return self.post(x, self.pre(x, proj, recon, evals))


class ConditionalBlock(nn.Module):
    """A :class:`DiffusionBlock` whose MLP also sees the pose condition ``[activations, G0]``.

    The condition is concatenated to every vertex's MLP input; since the first MLP layer is linear this is
    computed as a per-pose bias ``cond @ W_c`` of shape (B, H), broadcast over vertices.
    """

    def __init__(self, width: int, hidden: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.block = DiffusionBlock(width, hidden, dropout)
        self.cond = nn.Linear(cond_dim, hidden, bias=False)

    def pre(self, x: Tensor, proj: Tensor, recon: Tensor, evals: Tensor) -> Tensor:
        """(V, N, C) -> (V, N, H), the pose-independent part of the first MLP layer."""
        return self.block.pre(x, proj, recon, evals)

    def post(self, x: Tensor, pre: Tensor, cond: Tensor) -> Tensor:
        """``x`` (V, B|1, C), ``pre`` (V, B|1, H), ``cond`` (B, D) -> (V, B, C)."""
        return self.block.post(x, pre + self.cond(cond)[None, :, :])


class RigNetwork(nn.Module):
    """Neutral mesh + FACS activations -> per-vertex displacements, in the canonical frame.

    Inputs everywhere: ``vertices`` (V, 3) float32 canonical positions and ``operators``, the dict of
    :meth:`facerig.nn.operators.Operators.to_torch` (mass, evals, evecs, grad_rows, grad_cols, grad_x, grad_y,
    normals). Use :meth:`encode` once per mesh and :meth:`deform` per batch of poses; :meth:`forward` is both.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.k_eig = config.k_eig
        self.use_xyz = "xyz" in config.input_features
        self.use_normals = "normals" in config.input_features
        self.use_hks = "hks" in config.input_features
        self.use_fourier = "fourier" in config.input_features
        self.register_buffer(
            "fourier_freqs", math.pi * 2.0 ** torch.arange(config.n_fourier, dtype=torch.float32), persistent=False
        )
        lo, hi = (math.log10(t) for t in _HKS_TIMES)
        self.register_buffer("hks_times", torch.logspace(lo, hi, config.n_hks))
        n_in = config.n_input_features
        cond_dim = config.n_actions + config.global_dim

        self.global_in = nn.Linear(n_in, config.global_width)
        self.global_blocks = nn.ModuleList(
            [
                DiffusionBlock(config.global_width, config.global_width, config.dropout)
                for _ in range(config.global_blocks)
            ]
        )
        self.global_out = nn.Linear(config.global_width, config.global_dim)

        self.first = nn.Linear(n_in, config.width)
        self.blocks = nn.ModuleList(
            [ConditionalBlock(config.width, config.hidden, cond_dim, config.dropout) for _ in range(config.n_blocks)]
        )
        self.last = nn.Linear(config.width, 3)
        nn.init.normal_(self.last.weight, std=config.output_init_std)
        nn.init.zeros_(self.last.bias)

    @torch.jit.export
    def encode(self, vertices: Tensor, operators: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Everything that depends only on the neutral mesh.

        Args:
            vertices: (V, 3) float32 canonical positions.
            operators: the :meth:`Operators.to_torch` dict; only the first ``k_eig`` eigenpairs are used.

        Returns:
            The input of :meth:`deform`: "proj" (K, V), "recon" (3V, K), "evals" (K,), "g0" (D,),
            "x0" (V, 1, C) and "pre0" (V, 1, H).
        """
        mass = operators["mass"]
        evals = operators["evals"][: self.k_eig]
        evecs = operators["evecs"][:, : self.k_eig]
        rows, cols = operators["grad_rows"], operators["grad_cols"]
        # Gradient of every eigenvector, once per mesh: COO product by index_add_ (TorchScript has no sparse ops).
        picked = evecs.index_select(0, cols)  # (nnz, K)
        grad_x = torch.zeros_like(evecs).index_add_(0, rows, operators["grad_x"][:, None] * picked)
        grad_y = torch.zeros_like(evecs).index_add_(0, rows, operators["grad_y"][:, None] * picked)
        proj = (evecs * mass[:, None]).t().contiguous()  # (K, V)
        recon = torch.cat([evecs, grad_x, grad_y], 0)  # (3V, K)

        features = self.input_features(vertices, operators["normals"], evals, evecs)[:, None, :]  # (V, 1, F)

        pooled = self.global_in(features)
        for block in self.global_blocks:
            pooled = block(pooled, proj, recon, evals)
        pooled = (pooled[:, 0, :] * mass[:, None]).sum(0) / mass.sum()  # mass-weighted mean: mesh-density invariant
        g0 = self.global_out(pooled)  # (D,)

        x0 = self.first(features)  # (V, 1, C)
        pre0 = self.blocks[0].pre(x0, proj, recon, evals)
        return {"proj": proj, "recon": recon, "evals": evals, "g0": g0, "x0": x0, "pre0": pre0}

    @torch.jit.export
    def deform(self, encoded: Dict[str, Tensor], activations: Tensor) -> Tensor:
        """Displacements for a batch of poses of one encoded mesh.

        Args:
            encoded: the output of :meth:`encode`.
            activations: (B, P) float32 FACS activations; the all-zero row is the neutral.

        Returns:
            (B, V, 3) float32 canonical-frame displacements.
        """
        proj, recon, evals = encoded["proj"], encoded["recon"], encoded["evals"]
        g0 = encoded["g0"]
        cond = torch.cat([activations, g0[None, :].expand(activations.shape[0], g0.shape[0])], 1)  # (B, P+D)
        x = encoded["x0"]
        for i, block in enumerate(self.blocks):
            pre = encoded["pre0"] if i == 0 else block.pre(x, proj, recon, evals)
            x = block.post(x, pre, cond)  # (V, B, C)
        return self.last(x).permute(1, 0, 2).contiguous()

    def forward(self, vertices: Tensor, operators: Dict[str, Tensor], activations: Tensor) -> Tensor:
        """``deform(encode(vertices, operators), activations)``: (B, V, 3) displacements."""
        return self.deform(self.encode(vertices, operators), activations)

    def input_features(self, vertices: Tensor, normals: Tensor, evals: Tensor, evecs: Tensor) -> Tensor:
        """(V, F) per-vertex input: canonical xyz, normals, heat kernel signatures, Fourier features, as configured."""
        parts: List[Tensor] = []
        if self.use_xyz:
            parts.append(vertices)
        if self.use_normals:
            parts.append(normals)
        if self.use_hks:
            # HKS_t(v) = sum_k exp(-lambda_k t) phi_k(v)^2: intrinsic, and sign-ambiguity free.
            parts.append((evecs * evecs) @ torch.exp(-evals[:, None] * self.hks_times[None, :]))
        if self.use_fourier:
            # Positional encoding (Tancik et al. 2020): lets the per-vertex MLPs fit fine spatial detail quickly.
            angles = (vertices[:, :, None] * self.fourier_freqs[None, None, :]).reshape(vertices.shape[0], -1)
            parts.append(torch.sin(angles))
            parts.append(torch.cos(angles))
        return torch.cat(parts, 1)
