"""Foreign policies read into our checkpoint object: Stable-Baselines3 zips and plain state dicts.

Nothing from a foreign file is ever run. A Stable-Baselines3 (SB3) zip is read as its ``data``
entry (JSON; of the fields SB3 pickled, marked ``":serialized:"``, only the plain-text ones it wrote
beside the pickle are looked at, and the pickle itself is never decoded) and its ``policy.pth``
(``torch.load(weights_only=True)``, which rebuilds tensors and containers only). A plain state
dict is a ``.pt``/``.pth``/``.bin`` file read the same way, or a ``.safetensors`` file.

The result is an in-memory :class:`~rlcomp.checkpoint.Checkpoint` whose ``net`` is an MLP like
our agents' (Linear layers with ReLU or Tanh between them), so
:func:`~rlcomp.checkpoint.policy_from_checkpoint`, every compression spec and distillation work on
it as on our own checkpoints. Its metadata says what it is: ``algo`` is one of
:data:`IMPORTED_ALGOS`, ``action`` is ``argmax`` (discrete actions) or ``mean`` (continuous,
clipped to the environment's bounds), ``activation`` names the activation, ``imported`` names the
source format; its ``digest`` is the SHA-256 of the foreign file. It has no training config, so
fine-tuning refuses it.

Supported: SB3 ``DQN`` (the ``q_net`` of ``MlpPolicy``, greedy) and ``PPO``/``A2C`` with
``MlpPolicy`` (the policy network and ``action_net``: the Gaussian's mean for Box actions, the
argmax of the logits for Discrete ones; the value network is kept as ``value_net``). The
activation is the one the readable ``policy_kwargs`` name (SB3 writes ``activation_fn`` as text
beside its pickle); without one, SB3's default: ReLU for DQN, Tanh for PPO/A2C. Only if
``policy_kwargs`` is a pickle with no readable fields must the caller name the activation.
Refused, with a one-line :class:`ForeignFileError`: CNN, multi-input and recurrent policies,
SAC/TD3, gSDE, action spaces other than Discrete and Box, a missing or unreadable ``policy.pth``,
and a zip that has VecNormalize statistics (``vecnormalize.pkl``) beside it but no ``obs_norm``:
they are a pickle, so they must come as mean and variance in an ``.npz`` or ``.json``
(:func:`read_obs_norm`).

Neither format names its environment: the caller gives it, and the network's input and output
sizes must fit it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlcomp.checkpoint import Checkpoint
from rlcomp.envs import make_env, resolve_env_id
from rlcomp.files import SafetensorsError, read_safetensors, safetensors_metadata
from rlcomp.nets import ACTIVATIONS

IMPORTED_ALGOS = ("sb3-dqn", "sb3-ppo", "sb3-a2c", "state-dict")
"""The ``algo`` of an imported checkpoint: which SB3 algorithm, or a plain state dict."""

SUFFIXES = (".zip", ".pt", ".pth", ".bin", ".safetensors", ".pkl")
"""File name endings :func:`is_foreign` considers (a ``.safetensors`` file only without our
format in its metadata)."""

VECNORMALIZE_FILES = ("vecnormalize.pkl", "vec_normalize.pkl")
"""Names SB3 users (the RL Zoo, the Hugging Face hub) give VecNormalize statistics."""

SB3_DEFAULT_ACTIVATION = {"sb3-dqn": "relu", "sb3-ppo": "tanh", "sb3-a2c": "tanh"}
"""SB3's activation when ``policy_kwargs`` names none."""

_SB3_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh"}
"""SB3 ``activation_fn`` class names and our names for them."""


class ForeignFileError(ValueError):
    """A foreign file that cannot be imported (a one-line reason naming what is needed)."""


@dataclass(frozen=True)
class _EnvSpaces:
    env_id: str
    obs_size: int
    act_size: int
    discrete: bool
    low: np.ndarray | None
    high: np.ndarray | None


def is_foreign(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file :func:`load_foreign` should read (not one of our own formats)."""
    p = Path(path)
    if not p.is_file() or not p.name.lower().endswith(SUFFIXES):
        return False
    if p.suffix.lower() != ".safetensors":
        return True
    with p.open("rb") as f:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        header = head + f.read(size) if 0 < size < 1 << 24 else head
    try:
        fmt = safetensors_metadata(header).get("format", "")
    except SafetensorsError:
        return True
    return not str(fmt).startswith("rlcomp-")


def load_foreign(path: str | os.PathLike, env_id: str | None = None,
                 activation: str | None = None,
                 obs_norm: str | os.PathLike | None = None) -> Checkpoint:
    """Import an SB3 zip (``.zip``) or a plain state dict (any other file) as a checkpoint.

    Args:
        path: the foreign file.
        env_id: the environment the policy acts in (neither format names it).
        activation: ``relu`` or ``tanh``; needed for a state dict, optional for an SB3 zip.
        obs_norm: an ``.npz`` or ``.json`` of observation statistics (:func:`read_obs_norm`).

    Raises:
        ForeignFileError: (a ``ValueError``) with a one-line reason.
    """
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        raise ForeignFileError(
            f"{p}: a pickle, which rlcomp never loads; if it holds VecNormalize statistics, give "
            "the model's zip as the policy and the statistics' mean and var as an .npz or .json "
            "(--obs-norm)")
    if p.suffix.lower() == ".zip" or _is_sb3_zip(p):
        return load_sb3(p, env_id, activation, obs_norm)
    if activation is None:
        raise ForeignFileError(f"{p}: a state dict does not name its activation; give relu or "
                               "tanh (--activation)")
    return load_state_dict(p, env_id, activation, obs_norm)


def read_obs_norm(path: str | os.PathLike, obs_size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Observation statistics from an ``.npz`` (read without pickles) or a ``.json`` file.

    The file holds ``mean`` and ``var`` (VecNormalize's ``obs_rms.mean`` and ``obs_rms.var``), and
    optionally ``clip_obs`` (default 10) and ``epsilon`` (default 1e-8), VecNormalize's names.
    Observations are then normalised as VecNormalize does:
    ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``.

    Returns:
        ``mean``, ``var`` and the :class:`~rlcomp.nets.ObsNormalizer` settings ``clip`` and ``eps``.

    Raises:
        ForeignFileError: for an unreadable file or statistics that do not fit ``obs_size``.
    """
    p = Path(path)
    if p.suffix.lower() not in (".npz", ".json"):
        raise ForeignFileError(f"{p}: observation statistics must be an .npz or .json file")
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as npz:
                fields = {k: npz[k] for k in npz.files}
        else:
            fields = json.loads(p.read_text())
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ForeignFileError(f"{p}: cannot read observation statistics ({_first_line(exc)})") \
            from None
    if not isinstance(fields, dict) or not {"mean", "var"} <= set(fields):
        raise ForeignFileError(f"{p}: observation statistics need 'mean' and 'var'")
    try:
        mean, var = (np.asarray(fields[k], dtype=np.float64) for k in ("mean", "var"))
        settings = {"clip": float(fields.get("clip_obs", 10.0)),
                    "eps": float(fields.get("epsilon", 1e-8))}
    except (TypeError, ValueError):
        raise ForeignFileError(f"{p}: observation statistics must be numbers") from None
    if mean.shape != (obs_size,) or var.shape != (obs_size,):
        raise ForeignFileError(f"{p}: mean and var must each hold {obs_size} numbers, got shapes "
                               f"{mean.shape} and {var.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all()):
        raise ForeignFileError(f"{p}: mean and var must be finite, var >= 0")
    if not (settings["clip"] > 0 and settings["eps"] >= 0):
        raise ForeignFileError(f"{p}: clip_obs must be > 0 and epsilon >= 0")
    return mean, var, settings


# --- Stable-Baselines3 ----------------------------------------------------------------------------

def load_sb3(path: str | os.PathLike, env_id: str | None, activation: str | None = None,
             obs_norm: str | os.PathLike | None = None) -> Checkpoint:
    """Import an SB3 ``DQN``, ``PPO`` or ``A2C`` zip with ``MlpPolicy`` (see the module doc).

    Args:
        path: the zip ``model.save`` wrote.
        env_id: the environment the policy acts in.
        activation: ``relu`` or ``tanh``; must agree with the activation the zip names, if any.
        obs_norm: VecNormalize's observation statistics (:func:`read_obs_norm`).

    Raises:
        ForeignFileError: with a one-line reason.
    """
    p = Path(path)
    _check_activation(activation)
    blob = _read_bytes(p)
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile:
        raise ForeignFileError(f"{p}: not a zip file (an SB3 model is the zip model.save "
                               "writes)") from None
    with archive:
        data = _sb3_data(archive, p)
        _refuse_sb3_data(data, p)
        if "policy.pth" not in archive.namelist():
            raise ForeignFileError(f"{p}: no policy.pth in the zip (the network's weights are "
                                   "needed)")
        tensors = _torch_state_dict(archive.read("policy.pth"), f"{p}: policy.pth")
        version = (archive.read("_stable_baselines3_version").decode(errors="replace").strip()
                   if "_stable_baselines3_version" in archive.namelist() else None)
    algo = _sb3_algo(tensors, data, p)
    activation = _sb3_activation(data, algo, activation, p)
    spaces = _env_spaces(env_id, p)
    if algo == "sb3-dqn":
        net = _sequential(tensors, "q_net.q_net.", p)
        value, extra = None, {}
        if not spaces.discrete:
            raise ForeignFileError(f"{p}: a DQN acts in discrete action spaces, and "
                                   f"{spaces.env_id}'s is continuous")
    else:
        net = [*_sequential(tensors, "mlp_extractor.policy_net.", p),
               _head(tensors, "action_net", p)]
        value = [*_sequential(tensors, "mlp_extractor.value_net.", p),
                 _head(tensors, "value_net", p)]
        extra = {"log_std": tensors["log_std"]} if "log_std" in tensors else {}
        if spaces.discrete == ("log_std" in tensors):
            kind = "a discrete" if spaces.discrete else "a continuous"
            has = "a Gaussian (log_std)" if "log_std" in tensors else "a categorical"
            raise ForeignFileError(f"{p}: the policy has {has} action distribution, but "
                                   f"{spaces.env_id} has {kind} action space")
    statistics = _vecnormalize_beside(p)
    if statistics is not None and obs_norm is None:
        raise ForeignFileError(
            f"{p}: {statistics} lies beside it: the policy expects observations "
            "normalised by VecNormalize, whose statistics are a pickle rlcomp never loads; save "
            "obs_rms.mean and obs_rms.var to an .npz (np.savez(f, mean=..., var=...)) and give it "
            "(--obs-norm)")
    source = {"format": "stable-baselines3", "version": version}
    return _checkpoint(p, blob, spaces, algo, activation, net, value, extra, obs_norm, source)


def _is_sb3_zip(path: Path) -> bool:
    """Whether ``path`` is a zip holding SB3's ``data`` or ``policy.pth`` at its top level."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool({"data", "policy.pth"} & set(archive.namelist()))
    except (zipfile.BadZipFile, OSError):
        return False


def _sb3_data(archive: zipfile.ZipFile, path: Path) -> dict:
    """The ``data`` entry's JSON (its pickled fields left as the text they are)."""
    if "data" not in archive.namelist():
        raise ForeignFileError(f"{path}: no 'data' entry in the zip (not an SB3 model?)")
    try:
        data = json.loads(archive.read("data"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ForeignFileError(f"{path}: the zip's 'data' entry is not JSON") from None
    if not isinstance(data, dict):
        raise ForeignFileError(f"{path}: the zip's 'data' entry is not a JSON object")
    return data


def _readable(data: dict, key: str) -> dict:
    """The plain fields of a ``data`` entry (SB3 writes them beside a pickle); {} if none."""
    value = data.get(key)
    return {k: v for k, v in value.items() if not k.startswith(":")} \
        if isinstance(value, dict) else {}


def _space_type(data: dict, key: str) -> str | None:
    """The class name of an SB3 space (``Box``, ``Discrete``, ...), from its readable ``:type:``."""
    value = data.get(key)
    text = value.get(":type:") if isinstance(value, dict) else None
    match = re.search(r"\.(\w+)'>$", text) if isinstance(text, str) else None
    return match.group(1) if match else None


def _refuse_sb3_data(data: dict, path: Path) -> None:
    """Refuse, from the readable ``data`` alone, what :func:`load_sb3` does not import."""
    module = str(_readable(data, "policy_class").get("__module__", ""))
    if re.search(r"\b(sac|td3|ddpg|tqc|crossq)\b", module):
        raise ForeignFileError(f"{path}: SAC/TD3-style policies ({module}) are not supported yet; "
                               "rlcomp imports SB3 DQN, PPO and A2C with MlpPolicy")
    if "recurrent" in module:
        raise ForeignFileError(f"{path}: recurrent policies ({module}) are not supported; rlcomp "
                               "imports SB3 DQN, PPO and A2C with MlpPolicy")
    if data.get("use_sde") is True:
        raise ForeignFileError(f"{path}: policies trained with gSDE (use_sde) are not supported")
    obs_type, act_type = _space_type(data, "observation_space"), _space_type(data, "action_space")
    if obs_type not in (None, "Box"):
        raise ForeignFileError(f"{path}: {obs_type} observation spaces are not supported (only "
                               "Box: MlpPolicy on vector observations)")
    shape = _readable(data, "observation_space").get("_shape")
    if isinstance(shape, list) and len(shape) == 3:
        raise ForeignFileError(f"{path}: image observations {shape} (CnnPolicy) are not "
                               "supported; rlcomp imports MlpPolicy")
    if act_type not in (None, "Box", "Discrete"):
        raise ForeignFileError(f"{path}: {act_type} action spaces are not supported (only "
                               "Discrete and Box)")


def _sb3_algo(tensors: dict[str, torch.Tensor], data: dict, path: Path) -> str:
    """``sb3-dqn``, ``sb3-ppo`` or ``sb3-a2c`` from the tensor names; refuses the others."""
    keys = list(tensors)
    if any(".cnn." in k or k.startswith("cnn.") or tensors[k].dim() == 4 for k in keys):
        raise ForeignFileError(f"{path}: CNN policies (CnnPolicy) are not supported; rlcomp "
                               "imports MlpPolicy")
    if any("lstm" in k for k in keys):
        raise ForeignFileError(f"{path}: recurrent policies (LSTM) are not supported; rlcomp "
                               "imports SB3 DQN, PPO and A2C with MlpPolicy")
    if any(k.startswith(("actor.", "critic.")) for k in keys):
        raise ForeignFileError(f"{path}: SAC/TD3 policies (actor and critic networks) are not "
                               "supported yet; rlcomp imports SB3 DQN, PPO and A2C")
    if any(k.startswith("q_net.q_net.") for k in keys):
        allowed, algo = ("q_net.q_net.", "q_net_target.q_net."), "sb3-dqn"
    elif "action_net.weight" in tensors:
        allowed = ("mlp_extractor.policy_net.", "mlp_extractor.value_net.", "action_net.",
                   "value_net.", "log_std")
        algo = "sb3-ppo" if "clip_range" in data or "n_epochs" in data else "sb3-a2c"
    else:
        raise ForeignFileError(f"{path}: policy.pth holds neither a DQN q_net nor an "
                               "actor-critic action_net; rlcomp imports SB3 DQN, PPO and A2C")
    stray = [k for k in keys if not k.startswith(allowed)]
    if stray:
        raise ForeignFileError(f"{path}: tensor {stray[0]!r} is not part of an SB3 MlpPolicy "
                               "(custom feature extractors and layers are not supported)")
    return algo


def _sb3_activation(data: dict, algo: str, given: str | None, path: Path) -> str:
    """The activation the readable ``policy_kwargs`` name, else ``given``, else SB3's default."""
    kwargs = data.get("policy_kwargs")
    readable = _readable(data, "policy_kwargs")
    named = readable.get("activation_fn")
    if isinstance(kwargs, dict) and ":serialized:" in kwargs and not readable and given is None:
        raise ForeignFileError(f"{path}: policy_kwargs is stored only as a pickle, so the "
                               "activation is unknown; give relu or tanh (--activation)")
    if named is None:
        return given or SB3_DEFAULT_ACTIVATION[algo]
    match = re.search(r"(\w+)'?>?$", str(named))
    found = _SB3_ACTIVATIONS.get(match.group(1) if match else "")
    if found is None:
        raise ForeignFileError(f"{path}: activation {named} is not supported (relu, tanh)")
    if given is not None and given != found:
        raise ForeignFileError(f"{path}: the zip names activation {found}, not {given}")
    return found


def _sequential(tensors: dict[str, torch.Tensor], prefix: str,
                path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Linear layers of an SB3 ``nn.Sequential`` (indices 0, 2, 4, ...) under ``prefix``."""
    names = [k[len(prefix):] for k in tensors if k.startswith(prefix)]
    indices = sorted({int(n.split(".")[0]) for n in names if n.split(".")[0].isdigit()})
    expected = {f"{2 * i}.{part}" for i in range(len(indices)) for part in ("weight", "bias")}
    if set(names) != expected:
        raise ForeignFileError(f"{path}: {prefix.rstrip('.')} is not Linear layers with an "
                               f"activation between them (tensors {sorted(names)})")
    return [_linear(tensors, f"{prefix}{2 * i}.", path) for i in range(len(indices))]


def _head(tensors: dict[str, torch.Tensor], name: str,
          path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    if f"{name}.weight" not in tensors or f"{name}.bias" not in tensors:
        raise ForeignFileError(f"{path}: policy.pth has no {name} weight and bias")
    return _linear(tensors, f"{name}.", path)


def _vecnormalize_beside(path: Path) -> Path | None:
    """VecNormalize statistics beside a zip, or in a folder named like the zip."""
    for folder in (path.parent, path.parent / path.stem):
        for name in VECNORMALIZE_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


# --- plain state dicts ----------------------------------------------------------------------------

def load_state_dict(path: str | os.PathLike, env_id: str | None, activation: str,
                    obs_norm: str | os.PathLike | None = None, prefix: str = "") -> Checkpoint:
    """Import the state dict of an MLP: ``.pt``/``.pth``/``.bin`` (PyTorch) or ``.safetensors``.

    The network is the file's Linear layers (a 2-D ``NAME.weight`` and an optional 1-D
    ``NAME.bias``; a missing bias is zero) in order: the file's order for PyTorch files, for
    safetensors (whose files keep no order) the names' order with numbers compared as numbers
    (``0, 2, 10``). Their shapes must chain, the first take the environment's observations and
    the last give its number of actions (the policy is greedy) or its action vector (the policy
    acts with it, clipped to the bounds).

    Args:
        path: the file.
        env_id: the environment the policy acts in.
        activation: ``relu`` or ``tanh``, between every two Linear layers.
        obs_norm: observation statistics (:func:`read_obs_norm`), if the policy expects them.
        prefix: read only tensors whose names start with it (one network of several).

    Raises:
        ForeignFileError: with a one-line reason.
    """
    p = Path(path)
    _check_activation(activation)
    if activation is None:
        raise ForeignFileError(f"{p}: give the network's activation, relu or tanh "
                               "(--activation)")
    blob = _read_bytes(p)
    if p.suffix.lower() == ".safetensors":
        try:
            tensors = read_safetensors(blob)[1]
        except SafetensorsError as exc:
            raise ForeignFileError(f"{p}: {exc}") from None
        tensors = dict(sorted(tensors.items(), key=lambda kv: _natural(kv[0])))
    else:
        tensors = _torch_state_dict(blob, str(p))
    tensors = {k: v for k, v in tensors.items() if k.startswith(prefix)}
    if not tensors:
        raise ForeignFileError(f"{p}: no tensors" + (f" under {prefix!r}" if prefix else ""))
    spaces = _env_spaces(env_id, p)
    net = _linear_layers(tensors, p)
    source = {"format": "safetensors" if p.suffix.lower() == ".safetensors" else "pytorch"}
    return _checkpoint(p, blob, spaces, "state-dict", activation, net, None, {}, obs_norm, source)


def _linear_layers(tensors: dict[str, torch.Tensor],
                   path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Linear layers of a state dict, in its order; refuses any other tensor."""
    layers, used = [], set()
    for key, tensor in tensors.items():
        if not (key == "weight" or key.endswith(".weight")):
            continue
        if tensor.dim() != 2:
            raise ForeignFileError(f"{path}: {key} has shape {tuple(tensor.shape)}, not a Linear "
                                   "layer's (only MLPs of Linear layers are supported)")
        name = key[: -len("weight")]
        bias = tensors.get(name + "bias")
        if bias is None:
            bias = torch.zeros(tensor.shape[0], dtype=tensor.dtype)
        used |= {key, name + "bias"}
        layers.append(_linear({key: tensor, name + "bias": bias}, name, path))
    stray = [k for k in tensors if k not in used]
    if stray:
        raise ForeignFileError(f"{path}: tensor {stray[0]!r} is not a Linear layer's weight or "
                               "bias (only MLPs of Linear layers are supported)")
    return layers


def _natural(name: str) -> list:
    """A sort key comparing the numbers in ``name`` as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


# --- shared ---------------------------------------------------------------------------------------

def _check_activation(activation: str | None) -> None:
    if activation is not None and activation not in ACTIVATIONS:
        raise ForeignFileError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                               f"got {activation!r}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ForeignFileError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") \
            from None


def _torch_state_dict(blob: bytes, what: str) -> dict[str, torch.Tensor]:
    """A PyTorch state dict read with ``weights_only=True`` (tensors and containers only)."""
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged or non-weights files
        raise ForeignFileError(f"{what}: not a readable PyTorch state dict "
                               f"({_first_line(exc)})") from None
    if not isinstance(state, dict) or not state:
        raise ForeignFileError(f"{what}: holds a {type(state).__name__}, not a state dict "
                               "(names mapped to tensors)")
    bad = next((k for k, v in state.items()
                if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ForeignFileError(f"{what}: entry {bad!r} is not a tensor (save model.state_dict() "
                               "of the network itself)")
    return dict(state)


def _linear(tensors: dict[str, torch.Tensor], name: str,
            path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 ``(weight, bias)`` of the Linear layer ``name`` (``"q_net.q_net.0."``)."""
    weight, bias = tensors[name + "weight"], tensors[name + "bias"]
    if not (weight.is_floating_point() and bias.is_floating_point()):
        raise ForeignFileError(f"{path}: {name}weight and bias must be floating point")
    if weight.dim() != 2 or tuple(bias.shape) != (weight.shape[0],):
        raise ForeignFileError(f"{path}: {name}weight {tuple(weight.shape)} and bias "
                               f"{tuple(bias.shape)} are not a Linear layer's")
    return weight.detach().float().contiguous(), bias.detach().float().contiguous()


def _env_spaces(env_id: str | None, path: Path) -> _EnvSpaces:
    """The environment's observation and action sizes and bounds; refuses a missing id."""
    if not env_id:
        raise ForeignFileError(f"{path}: a foreign file does not name its environment; give the "
                               "one the policy acts in (--env)")
    try:
        env_id = resolve_env_id(env_id, notify=False)
        env = make_env(env_id)
    except ValueError as exc:
        raise ForeignFileError(f"{path}: {_first_line(exc)}") from None
    except Exception as exc:  # gymnasium raises many types: missing Box2D/MuJoCo, ...
        raise ForeignFileError(f"{path}: cannot create environment {env_id!r} "
                               f"({_first_line(exc)})") from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs_space, gym.spaces.Box):
        raise ForeignFileError(f"{path}: {env_id} has {type(obs_space).__name__} observations; "
                               "only Box observations are supported")
    obs_size = int(np.prod(obs_space.shape))
    if isinstance(act_space, gym.spaces.Discrete):
        return _EnvSpaces(env_id, obs_size, int(act_space.n), True, None, None)
    if not isinstance(act_space, gym.spaces.Box):
        raise ForeignFileError(f"{path}: {env_id} has {type(act_space).__name__} actions; only "
                               "Discrete and Box actions are supported")
    return _EnvSpaces(env_id, obs_size, int(np.prod(act_space.shape)), False,
                      act_space.low.astype(np.float32).reshape(-1),
                      act_space.high.astype(np.float32).reshape(-1))


def _chain_sizes(layers: list[tuple[torch.Tensor, torch.Tensor]], path: Path) -> list[int]:
    """The sizes of Linear layers ``[(weight, bias), ...]``; refuses shapes that do not chain."""
    sizes = [int(layers[0][0].shape[1])]
    for i, (weight, _) in enumerate(layers):
        if weight.shape[1] != sizes[-1]:
            raise ForeignFileError(f"{path}: Linear layer {i} takes {weight.shape[1]} inputs but "
                                   f"the layer before gives {sizes[-1]} (the layers must chain)")
        sizes.append(int(weight.shape[0]))
    return sizes


def _checkpoint(path: Path, blob: bytes, spaces: _EnvSpaces, algo: str, activation: str,
                net: list, value: list | None, extra: dict[str, torch.Tensor],
                obs_norm: str | os.PathLike | None, source: dict) -> Checkpoint:
    """The in-memory checkpoint of an imported network ``net`` (and value network ``value``)."""
    sizes = _chain_sizes(net, path)
    if (sizes[0], sizes[-1]) != (spaces.obs_size, spaces.act_size):
        raise ForeignFileError(f"{path}: network {sizes} does not fit {spaces.env_id} "
                               f"({spaces.obs_size} observations, {spaces.act_size} actions)")
    architecture = {"net": sizes}
    tensors = dict(extra)
    for prefix, layers in (("net", net), ("value_net", value)):
        if layers is None:
            continue
        architecture[prefix] = _chain_sizes(layers, path)
        for i, (weight, bias) in enumerate(layers):
            tensors[f"{prefix}.{2 * i}.weight"], tensors[f"{prefix}.{2 * i}.bias"] = weight, bias
    meta: dict = {"name": path.name, "env_id": spaces.env_id, "algo": algo,
                  "action": "argmax" if spaces.discrete else "mean", "activation": activation,
                  "architecture": architecture, "imported": {**source, "file": str(path)}}
    if not spaces.discrete:
        meta["action_bounds"] = [spaces.low.tolist(), spaces.high.tolist()]
    if obs_norm is not None:
        mean, var, meta["obs_norm"] = read_obs_norm(obs_norm, spaces.obs_size)
        tensors["obs_norm.mean"] = torch.from_numpy(mean)
        tensors["obs_norm.var"] = torch.from_numpy(var)
    return Checkpoint(tensors=tensors, meta=meta, digest=hashlib.sha256(blob).hexdigest(),
                      path=path)
