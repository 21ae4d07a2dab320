"""Targets of the 2024 recipe that differ from P1 (design-2024.md 5.3 and 6.4)."""

from __future__ import annotations

from torch import Tensor

from dreamer.behavior import lambda_return


def soft_continue_target(is_terminal: Tensor, gamma: float) -> Tensor:
    """c_t = gamma (1 - is_terminal_t): the continue head learns the discount itself (5.3)."""
    return gamma * (1.0 - is_terminal.float())


def replay_value_returns(reward: Tensor, boot: Tensor, is_terminal: Tensor, is_last: Tensor,
                         gamma: float, lam: float) -> Tensor:
    """lambda-returns along a replayed window (B, T) -> (B, T-1), bootstrapping on the imagined
    returns `boot` (R_0 of the rollout started at each step) with the real rewards and terminals:

        G_{T-1} = boot_{T-1}
        G_t = r_{t+1} + gamma (1 - term_{t+1}) ((1 - lam'_{t+1}) boot_{t+1} + lam'_{t+1} G_{t+1})
        lam'_{t+1} = lam (1 - last_{t+1})

    so an episode end at t+1 cuts the recursion to boot_{t+1} and a terminal drops the future."""
    cont = gamma * (1.0 - is_terminal.float())
    return lambda_return(reward, boot, cont, lam * (1.0 - is_last.float()))


def replay_value_weight(is_last: Tensor) -> Tensor:
    """(B, T) -> (B, T-1): the loss at step t counts unless t ends an episode; the masked steps stay
    in the mean's denominator (6.4.3)."""
    return 1.0 - is_last[:, :-1].float()
