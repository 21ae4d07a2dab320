"""The 2024 recipe's world model and its loss (design-2024.md 3-5 and 6.1).

Per replayed step (B, T): the reconstruction of every observation key, the reward's two-hot
cross-entropy in raw space, the continue head against the soft target gamma (1 - is_terminal),
and the KL terms with free bits on the total over latents (P1's `kl_loss`):
    L = sum_keys rec + rew + con + dyn_scale dyn + rep_scale rep      (scales 1, 1, 1, 1, 0.1)
The reward and continue heads read the features without a stop-gradient, so they train the RSSM
and encoder too.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import Tensor, nn

from dreamer.nets.dists import bernoulli_nll
from dreamer.nets.rssm import Latent, stack
from dreamer.v2024.decoder import Decoder
from dreamer.v2024.encoder import Encoder
from dreamer.v2024.heads import MLPHead
from dreamer.v2024.returns import soft_continue_target
from dreamer.v2024.rssm import RSSM
from dreamer.v2024.twohot import RawTwoHot
from dreamer.world_model import action_dim, encode_window, kl_loss


class WorldModel(nn.Module):
    def __init__(self, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, *, units: int, deter: int,
                 stoch: int, classes: int, depth: int, blocks: int, mults: tuple[int, ...], coder_layers: int,
                 head_layers: int, unimix: float, bins: int, limit: float, gamma: float, free_nats: float,
                 dyn_scale: float, rep_scale: float, eps: float):
        super().__init__()
        self.gamma, self.free_nats, self.dyn_scale, self.rep_scale = gamma, free_nats, dyn_scale, rep_scale
        self.encoder = Encoder(obs_space, depth, mults, units, coder_layers, eps)
        self.rssm = RSSM(deter, units, stoch, classes, blocks, unimix, action_dim(act_space), self.encoder.out_dim,
                         eps)
        self.decoder = Decoder(obs_space, deter, stoch * classes, depth, units, coder_layers, blocks, eps)
        feat = deter + stoch * classes
        self.twohot = RawTwoHot(bins, limit)
        self.reward = MLPHead(feat, units, head_layers, bins, outscale=0.0, eps=eps)
        self.cont = MLPHead(feat, units, head_layers, 1, outscale=1.0, eps=eps)

    def observe(self, tokens: Tensor, prev_action: Tensor, is_first: Tensor, start: Latent) -> tuple[Latent, Tensor]:
        """Posterior states (B, T, ...) and logits (B, T, S, C) from the carry `start` (B, ...)."""
        steps = is_first.shape[1]
        state = start
        states, logits = [], []
        for t in range(steps):
            state, step_logits = self.rssm.obs_step(state, prev_action[:, t], tokens[:, t], is_first[:, t])
            states.append(state)
            logits.append(step_logits)
        return stack(states), torch.stack(logits, 1)

    def observe_window(self, data: dict[str, Tensor], steps: int) -> Latent:
        """Posteriors (K, steps, ...) of the first `steps` steps of (K, L) windows that start an
        episode (for open-loop predictions)."""
        tokens, prev_action = encode_window(self.encoder, data, steps)
        start = self.rssm.initial_state(tokens.shape[0], tokens.device)
        return self.observe(tokens, prev_action, data["is_first"][:, :steps], start)[0]

    def predict(self, states: Latent) -> dict[str, Tensor]:
        """Decoded observations (images in [0, 1], vectors in symlog space), the reward's mean and
        the continue probability, for states (..., )."""
        lead = states.deter.shape[:-1]
        deter, stoch_flat = states.deter.flatten(0, -2), states.stoch.flatten(-2).flatten(0, -2)
        feat = torch.cat([deter, stoch_flat], -1)
        out = {k: v.unflatten(0, lead) for k, v in self.decoder.predict(deter, stoch_flat).items()}
        out["reward"] = self.twohot.mean(self.reward(feat)).unflatten(0, lead)
        out["cont"] = torch.sigmoid(self.cont(feat).squeeze(-1).float()).unflatten(0, lead)
        return out

    def loss(self, batch: dict[str, Tensor], prev_action: Tensor, start: Latent
             ) -> tuple[Tensor, Latent, dict[str, Tensor]]:
        """(B, T) observations, the actions before them (B, T, A) and the carry before the first
        -> (mean loss, posterior states (B, T, ...), per-term means)."""
        B, T = batch["is_first"].shape
        flat = {k: v.flatten(0, 1) for k, v in batch.items()}  # (B*T, ...)
        tokens = self.encoder(flat).unflatten(0, (B, T))  # (B, T, E)
        post, post_logits = self.observe(tokens, prev_action, batch["is_first"], start)
        prior_logits = self.rssm.prior_logits(post.deter)  # (B, T, S, C)
        dyn, rep, kl = kl_loss(post_logits, prior_logits, self.free_nats)

        deter, stoch_flat = post.deter.flatten(0, 1), post.stoch.flatten(-2).flatten(0, 1)  # (B*T, ...)
        feat = torch.cat([deter, stoch_flat], -1)
        terms = self.decoder.loss(deter, stoch_flat, flat)
        terms["reward"] = self.twohot.loss(self.reward(feat), flat["reward"])
        cont_target = soft_continue_target(flat["is_terminal"], self.gamma)
        terms["cont"] = bernoulli_nll(self.cont(feat).squeeze(-1), cont_target)
        total = sum(terms.values()) + (self.dyn_scale * dyn + self.rep_scale * rep).flatten()
        metrics = {f"loss/{k}": v.mean() for k, v in terms.items()}
        metrics.update({"loss/dyn": dyn.mean(), "loss/rep": rep.mean(), "wm/kl": kl.mean()})
        return total.mean(), post, metrics
