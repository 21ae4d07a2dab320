"""World model: encoder, RSSM, decoder, reward and continue heads, and its loss (P1 eq. 2-5).

Observation keys are split by shape: (H, W, C) uint8 images go through the CNN, 1-D float vectors
through symlog and an MLP. Everything else in an observation (reward, flags) is not an input.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from dreamer.config import CoderConfig, HeadConfig, RSSMConfig, TwoHotConfig, WorldModelConfig
from dreamer.nets.dists import OneHotDist, TwoHot, bernoulli_nll, categorical_kl, symlog
from dreamer.nets.layers import MLP, ConvDecoder, ConvEncoder, linear
from dreamer.nets.rssm import RSSM, Latent

RESERVED_KEYS = ("reward", "is_first", "is_last", "is_terminal")


def split_keys(obs_space: gym.spaces.Dict) -> tuple[list[str], list[str]]:
    """(image keys, vector keys) of an observation space."""
    images, vectors = [], []
    for key, space in obs_space.spaces.items():
        if key in RESERVED_KEYS or key.startswith("log_"):
            continue
        if len(space.shape) == 3:
            images.append(key)
        elif len(space.shape) == 1:
            vectors.append(key)
        else:
            raise ValueError(f"observation {key!r} has shape {space.shape}; accepted: (H, W, C) images or 1-D vectors")
    if not images and not vectors:
        raise ValueError(f"observation space has no image or vector keys: {list(obs_space.spaces)}")
    return images, vectors


def previous_actions(action: Tensor) -> Tensor:
    """(B, T, A) actions, `action[:, t]` taken after observing step t -> the action before each
    step (zeros at t = 0, where a window starts)."""
    return torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)


def encode_window(encoder: nn.Module, data: dict[str, Tensor], steps: int) -> tuple[Tensor, Tensor]:
    """The first `steps` steps of (K, L) windows -> their encodings (K, steps, E) and the actions
    before them (K, steps, A)."""
    count = data["is_first"].shape[0]
    tokens = encoder({k: v[:, :steps].flatten(0, 1) for k, v in data.items()}).unflatten(0, (count, steps))
    return tokens, previous_actions(data["action"][:, :steps])


def action_dim(act_space: gym.spaces.Space) -> int:
    if isinstance(act_space, gym.spaces.Discrete):
        return int(act_space.n)
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        return int(act_space.shape[0])
    raise ValueError(f"action space {act_space} not supported; accepted: Discrete or 1-D Box")


class Encoder(nn.Module):
    """Observation dict (N, ...) -> embedding (N, E): CNN over stacked images, MLP over symlog vectors."""

    def __init__(self, cfg: CoderConfig, obs_space: gym.spaces.Dict):
        super().__init__()
        self.image_keys, self.vector_keys = split_keys(obs_space)
        self.out_dim = 0
        if self.image_keys:
            shapes = {obs_space[k].shape[:2] for k in self.image_keys}
            if len(shapes) != 1:
                raise ValueError(f"image observations differ in size: {sorted(shapes)}")
            (height, width), channels = shapes.pop(), sum(obs_space[k].shape[2] for k in self.image_keys)
            if height != width:
                raise ValueError(f"image observations must be square, got {height}x{width}")
            self.cnn = ConvEncoder((height, width, channels), cfg.cnn_depth, cfg.min_res)
            self.out_dim += self.cnn.out_dim
        if self.vector_keys:
            size = sum(obs_space[k].shape[0] for k in self.vector_keys)
            self.mlp = MLP(size, cfg.mlp_units, cfg.mlp_layers)
            self.out_dim += self.mlp.out_dim

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        parts = []
        if self.image_keys:
            parts.append(self.cnn(torch.cat([obs[k] for k in self.image_keys], -1)))
        if self.vector_keys:
            parts.append(self.mlp(symlog(torch.cat([obs[k].float() for k in self.vector_keys], -1))))
        return torch.cat(parts, -1)


class Decoder(nn.Module):
    """Features (N, F) -> reconstruction losses per observation key (N,), P1's MSE in [0, 1] pixel
    units for images and MSE in symlog space for vectors, each summed over its dimensions."""

    def __init__(self, cfg: CoderConfig, feat_dim: int, obs_space: gym.spaces.Dict):
        super().__init__()
        self.image_keys, self.vector_keys = split_keys(obs_space)
        if self.image_keys:
            self.channels = [obs_space[k].shape[2] for k in self.image_keys]
            height, width = obs_space[self.image_keys[0]].shape[:2]
            self.cnn = ConvDecoder(feat_dim, (height, width, sum(self.channels)), cfg.cnn_depth, cfg.min_res)
        if self.vector_keys:
            self.sizes = [obs_space[k].shape[0] for k in self.vector_keys]
            self.mlp = MLP(feat_dim, cfg.mlp_units, cfg.mlp_layers)
            self.vector_out = linear(self.mlp.out_dim, sum(self.sizes), output=True)

    def predict(self, feat: Tensor) -> dict[str, Tensor]:
        """Predicted observations: images in [0, 1] units (N, H, W, C), vectors in symlog space."""
        out: dict[str, Tensor] = {}
        if self.image_keys:
            for key, image in zip(self.image_keys, self.cnn(feat).split(self.channels, -1)):
                out[key] = image
        if self.vector_keys:
            for key, vec in zip(self.vector_keys, self.vector_out(self.mlp(feat)).split(self.sizes, -1)):
                out[key] = vec
        return out

    def loss(self, feat: Tensor, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        losses = {}
        for key, pred in self.predict(feat).items():
            if key in self.image_keys:
                target = obs[key].float() / 255.0
            else:
                target = symlog(obs[key].float())
            losses[key] = (pred.float() - target).square().flatten(1).sum(-1)
        return losses


class RewardHead(nn.Module):
    """MLP -> two-hot logits over symlog bins; the output layer starts at zero."""

    def __init__(self, cfg: HeadConfig, feat_dim: int, twohot: TwoHot):
        super().__init__()
        self.mlp = MLP(feat_dim, cfg.units, cfg.layers)
        self.out = linear(self.mlp.out_dim, twohot.bins.numel(), zero=True, output=True)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.mlp(feat))  # (..., bins)


class ContinueHead(nn.Module):
    """MLP -> Bernoulli logit of continuing (1 - is_terminal)."""

    def __init__(self, cfg: HeadConfig, feat_dim: int):
        super().__init__()
        self.mlp = MLP(feat_dim, cfg.units, cfg.layers)
        self.out = linear(self.mlp.out_dim, 1, output=True)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.mlp(feat)).squeeze(-1)  # (...,)


def kl_loss(post_logits: Tensor, prior_logits: Tensor, free_nats: float) -> tuple[Tensor, Tensor, Tensor]:
    """KL balancing with free bits (P1 eq. 5).

    Logits (..., S, C). dyn = KL[sg(q) || p], rep = KL[q || sg(p)], each summed over the S latents,
    then clipped below at `free_nats`. Returns (dyn, rep, raw KL), each (...,).
    """
    dyn = categorical_kl(post_logits.detach(), prior_logits).sum(-1)
    rep = categorical_kl(post_logits, prior_logits.detach()).sum(-1)
    return dyn.clamp(min=free_nats), rep.clamp(min=free_nats), dyn.detach()


class WorldModel(nn.Module):
    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        act_space: gym.spaces.Space,
        *,
        rssm: RSSMConfig,
        encoder: CoderConfig,
        decoder: CoderConfig,
        reward_head: HeadConfig,
        cont_head: HeadConfig,
        twohot: TwoHotConfig,
        loss: WorldModelConfig,
    ):
        super().__init__()
        self.cfg = loss
        self.encoder = Encoder(encoder, obs_space)
        self.rssm = RSSM(rssm, self.encoder.out_dim, action_dim(act_space))
        feat = self.rssm.feat_dim
        self.decoder = Decoder(decoder, feat, obs_space)
        self.twohot = TwoHot(twohot.bins, twohot.limit)
        self.reward = RewardHead(reward_head, feat, self.twohot)
        self.cont = ContinueHead(cont_head, feat)

    def observe_window(self, data: dict[str, Tensor], steps: int) -> Latent:
        """Posteriors (K, steps, ...) of the first `steps` steps of (K, L) windows that start an
        episode (for open-loop predictions)."""
        embed, prev_action = encode_window(self.encoder, data, steps)
        return self.rssm.observe(embed, prev_action, data["is_first"][:, :steps])[0]

    def predict(self, states: Latent) -> dict[str, Tensor]:
        """Decoded observations (images in [0, 1], vectors in symlog space), the reward's mean and
        the continue probability, for states (..., )."""
        feat = states.feat()
        lead = feat.shape[:-1]
        out = {k: v.unflatten(0, lead) for k, v in self.decoder.predict(feat.flatten(0, -2)).items()}
        out["reward"] = self.twohot.mean(self.reward(feat))
        out["cont"] = torch.sigmoid(self.cont(feat).float())
        return out

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Latent, dict[str, Tensor]]:
        """`loss`, as a module call (what `run.compile` compiles)."""
        return self.loss(batch)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Latent, dict[str, Tensor]]:
        """World-model loss on a (B, T) batch; returns (loss, posterior states, metrics).

        `batch["action"][:, t]` is the action taken after observing step t, so the RSSM at step t
        receives action t-1 (zeros at t = 0, where the window starts with `is_first`).
        """
        B, T = batch["is_first"].shape
        flat = {k: v.flatten(0, 1) for k, v in batch.items()}  # (B*T, ...)
        embed = self.encoder(flat).unflatten(0, (B, T))  # (B, T, E)
        prev_action = previous_actions(batch["action"])  # (B, T, A)
        post, post_logits, prior_logits = self.rssm.observe(embed, prev_action, batch["is_first"])

        feat = post.feat().flatten(0, 1)  # (B*T, F)
        pred_losses = self.decoder.loss(feat, flat)
        pred_losses["reward"] = self.twohot.loss(self.reward(feat), flat["reward"])
        pred_losses["cont"] = bernoulli_nll(self.cont(feat), 1.0 - flat["is_terminal"].float())
        dyn, rep, kl = kl_loss(post_logits, prior_logits, self.cfg.free_nats)

        total = self.cfg.pred_scale * sum(pred_losses.values()) + (
            self.cfg.dyn_scale * dyn + self.cfg.rep_scale * rep
        ).flatten()
        metrics = {f"loss/{k}": v.mean() for k, v in pred_losses.items()}
        metrics.update({
            "loss/dyn": dyn.mean(),
            "loss/rep": rep.mean(),
            "wm/kl": kl.mean(),
            "wm/prior_entropy": OneHotDist(prior_logits.detach()).entropy().sum(-1).mean(),
            "wm/post_entropy": OneHotDist(post_logits.detach()).entropy().sum(-1).mean(),
        })
        return total.mean(), post, metrics
