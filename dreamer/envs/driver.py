"""Collection: step N envs with a policy, hand every step to the replay, report finished episodes."""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from dreamer import signing
from dreamer.errors import first_line

# policy(obs of N envs) -> (model-form actions (N, A), env actions (N,) or (N, A))
Policy = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
log = logging.getLogger("dreamer")
LOG_PREFIX = "log_"  # observation keys for the episode record (Crafter achievements, MineRL items)


def random_policy(act_space: gym.spaces.Space, envs: int, rng: np.random.Generator) -> Policy:
    """Uniform random actions, for the prefill."""
    def policy(obs):
        if isinstance(act_space, gym.spaces.Discrete):
            index = rng.integers(0, int(act_space.n), envs)
            return np.eye(int(act_space.n), dtype=np.float32)[index], index
        action = rng.uniform(-1, 1, (envs, act_space.shape[0])).astype(np.float32)
        return action, action
    return policy


class Driver:
    """Holds the vector env and its last observation. `step(policy)` acts once in every env,
    passes `{obs, action}` to `on_step`, and returns the episodes that ended with this step. It is
    `act(policy)` then `advance()`: a caller can do other work between the two (the training loop
    launches its updates there, so the device trains while the envs step).

    Given `restart(seed) -> VectorEnv`, a fault while stepping (a subprocess env that crashed, raised,
    or took longer than `timeout` seconds) closes the envs, ends their running episodes as truncated
    (returned like finished ones, with `truncated: 1.0`), and continues with fresh envs."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int, on_step: Callable[[dict], None],
                 restart: Callable[[int], gym.vector.VectorEnv] | None = None, timeout: float | None = None):
        self.envs, self.on_step = envs, on_step
        self.restart, self.timeout, self.seed = restart, timeout, seed
        self.count = envs.num_envs
        self.obs, _ = envs.reset(seed=seed)
        self.returns = np.zeros(self.count)
        self.lengths = np.zeros(self.count, np.int64)
        self.restarts = 0
        self.env_action: np.ndarray | None = None  # chosen by `act`, taken by `advance`

    def step(self, policy: Policy) -> list[dict[str, float]]:
        episodes = self.act(policy)
        return episodes + self.advance()

    def act(self, policy: Policy) -> list[dict[str, float]]:
        """The policy's actions for the last observation, handed to `on_step` with it; returns the
        episodes that ended with that observation. `advance()` then steps the envs."""
        obs = self.obs
        model_action, self.env_action = policy(obs)
        self.on_step({**obs, "action": model_action})
        self.returns = np.where(obs["is_first"], 0.0, self.returns + obs["reward"])
        self.lengths = np.where(obs["is_first"], 0, self.lengths + 1)
        episodes = []
        for env in np.flatnonzero(obs["is_last"]):
            episode = {"return": float(self.returns[env]), "length": int(self.lengths[env])}
            for key in obs:
                if key.startswith(LOG_PREFIX):
                    episode[key[len(LOG_PREFIX):]] = float(obs[key][env])
            episodes.append(episode)
        return episodes

    def advance(self) -> list[dict[str, float]]:
        """Step every env with the actions of the last `act`; returns the episodes a fault in the
        envs cut short (ended as truncated), else none."""
        ended = self.obs["is_last"]
        try:
            self.obs = self._step(self.env_action)
        except Exception as err:  # noqa: BLE001 -- whatever a broken env raises
            if self.restart is None:
                raise
            return self._recover(err, ended)
        return []

    def _step(self, env_action: np.ndarray) -> dict[str, np.ndarray]:
        if isinstance(self.envs, gym.vector.AsyncVectorEnv):
            self.envs.step_async(env_action)
            return self.envs.step_wait(timeout=self.timeout)[0]
        return self.envs.step(env_action)[0]

    def _recover(self, err: Exception, ended: np.ndarray) -> list[dict[str, float]]:
        """Close the broken envs, start fresh ones; the episodes they were in end as truncated."""
        self.restarts += 1
        log.warning(f"env fault ({first_line(err)}); "
                    f"restarting the {self.count} env(s) (restart {self.restarts})")
        self._close_broken()
        truncated = [{"return": float(self.returns[env]), "length": int(self.lengths[env]), "truncated": 1.0}
                     for env in range(self.count) if not ended[env]]
        self.envs = self.restart(self.seed + self.restarts * self.count)
        self.obs, _ = self.envs.reset(seed=self.seed + self.restarts * self.count)
        return truncated

    def _close_broken(self) -> None:
        """Kill the workers outright: a polite close would wait on the pipe of the dead or hung one."""
        if isinstance(self.envs, gym.vector.AsyncVectorEnv):
            for process in self.envs.processes:
                process.kill()
                process.join()
            for pipe in self.envs.parent_pipes:
                pipe.close()
            self.envs.closed = True
            return
        try:
            self.envs.close()
        except Exception:  # noqa: BLE001 -- a broken env may not close cleanly
            pass

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The last observation, episode sums and, for in-process envs, the pickled envs themselves
        (simulator state and RNGs), signed with this user's key (`dreamer.signing`), so a resumed
        run steps on exactly as this one would have."""
        state = {"obs": self.obs, "returns": self.returns, "lengths": self.lengths, "restarts": self.restarts,
                 "envs": None, "envs_signatures": None}
        if isinstance(self.envs, gym.vector.SyncVectorEnv):
            try:
                state["envs"] = [pickle.dumps(env) for env in self.envs.envs]
                state["envs_signatures"] = [signing.sign(blob) for blob in state["envs"]]
            except (pickle.PicklingError, TypeError, AttributeError) as err:
                log.warning(f"env state cannot be saved ({err}); a resumed run starts new episodes")
                state["envs"] = None
        return state

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Continue the saved envs where they were; False (the fresh envs stay) where they cannot
        be restored: envs in subprocesses, a different number of envs, or pickles this user's key
        did not sign (they are never unpickled)."""
        envs = state["envs"]
        if envs is None or not isinstance(self.envs, gym.vector.SyncVectorEnv) or len(envs) != self.count:
            return False
        signatures = state.get("envs_signatures") or [None] * len(envs)
        if not all(signing.signed_by_this_user(blob, sig) for blob, sig in zip(envs, signatures)):
            log.warning(f"the checkpoint's env state was not signed with this user's key ({signing.key_file()}); "
                        f"it is not unpickled, and the envs start new episodes")
            return False
        for env in self.envs.envs:
            env.close()
        self.envs.envs = [pickle.loads(blob) for blob in envs]
        # next-step autoreset: an env whose last step ended its episode resets on the next one
        self.envs._autoreset_envs = np.asarray(state["obs"]["is_last"], dtype=bool).copy()
        self.obs, self.returns, self.lengths = state["obs"], state["returns"], state["lengths"]
        self.restarts = state["restarts"]
        return True

    def close(self) -> None:
        self.envs.close()
