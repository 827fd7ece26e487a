"""PPO's minibatch step in closed form for the vector-input actor-critic (two tanh MLPs, a Gaussian or
categorical head): gradient, grad-norm clip and Adam, in place on flat tensors. The gradient is exactly what
autograd computes for `ppo_minibatch_loss` (tested to float rounding) and Adam follows torch.optim.Adam, with
about a third of the tensor operations and none of autograd's per-operation bookkeeping.

Why: with 64-unit networks on a CPU, an update is hundreds of tiny kernels and their Python / dispatcher
overhead costs more than the arithmetic. Writing the backward pass out halves the time of an update; with
`compile=True` torch.compile fuses the elementwise work between the matmuls into a few generated loops.
Pixel and text policies (CNN, sentence embeddings) keep the autograd path.

Notation for a minibatch of B transitions: r = exp(log pi(a|s) - log pi_old(a|s)), A the (normalised)
advantages, V the critic, R the returns, eps the clip coefficients.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from agents.ppo_policy import ActorCritic, Tanh

Layer = tuple[torch.Tensor, torch.Tensor]  # (weight (out, in), bias (out,)) of one Linear


def tanh_mlp_layers(net: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of an `mlp(..., activation=Tanh)`; raises if the net has any other structure."""
    layers = [m for m in net if isinstance(m, nn.Linear)]
    if any(not isinstance(m, (nn.Linear, Tanh)) for m in net) or len(net) != 2 * len(layers) - 1:
        raise ValueError(f"fused PPO gradients need a Linear/Tanh MLP, got {net}")
    return layers


def tanh_mlp_forward(layers: list[Layer], x: torch.Tensor) -> list[torch.Tensor]:
    """Activations [x, h_1, ..., h_L, out] of a tanh MLP; tanh(z) = 2 sigmoid(2z) - 1 (see `Tanh`)."""
    activations = [x]
    for i, (weight, bias) in enumerate(layers):
        z = torch.addmm(bias, activations[-1], weight.t())
        activations.append(z if i == len(layers) - 1 else torch.sigmoid(2 * z).mul_(2).sub_(1))
    return activations


def tanh_mlp_backward(layers: list[Layer], activations: list[torch.Tensor], d_out: torch.Tensor) -> list[torch.Tensor]:
    """[dLoss/dW_1, dLoss/db_1, ..., dLoss/dW_L, dLoss/db_L] given dLoss/d(out) (B, out)."""
    grads: list[torch.Tensor] = []
    d_z = d_out
    for i in reversed(range(len(layers))):
        grads[:0] = [d_z.t() @ activations[i], d_z.sum(0)]
        if i > 0:
            h = activations[i]
            d_h = d_z @ layers[i][0]
            d_z = torch.addcmul(d_h, d_h * h, h, value=-1.0)  # d_h * tanh'(z), tanh' = 1 - tanh^2
    return grads


def ppo_gradients(
    actor: list[Layer],
    log_std: torch.Tensor | None,
    critic: list[Layer],
    x: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    advantages: torch.Tensor,
    clip_coef: float,
    value_clip_coef: float | None,
    vf_coef: float,
    ent_coef: float,
) -> tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]:
    """d/dtheta of pg_loss - ent_coef * entropy + vf_coef * v_loss on the minibatch x (B, D), for a Gaussian
    (`log_std` given) or categorical (`log_std` None) actor. Returns the gradients in `FlatLayout` order (actor
    layers, log-std, critic layers) and the detached (log_ratio (B,), pg_loss, v_loss, entropy).

    The gradients of the two `max` terms follow autograd's rule: at a tie each side gets half, which sums to
    the unclipped gradient (both sides are equal exactly when the ratio or the value is inside the clip range).
    """
    batch = x.shape[0]
    actor_act = tanh_mlp_forward(actor, x)
    critic_act = tanh_mlp_forward(critic, x)
    out, values = actor_act[-1], critic_act[-1].squeeze(-1)

    # policy: d pg_loss / d log pi = -A r / B where the unclipped term is the max, else 0
    if log_std is not None:
        inv_std = (-log_std).exp()
        z = (actions - out) * inv_std  # (B, A)
        log_norm = log_std.sum() + 0.5 * out.shape[-1] * math.log(2 * math.pi)
        log_prob = -0.5 * z.pow(2).sum(-1) - log_norm
        entropy = log_norm + 0.5 * out.shape[-1]
    else:
        log_p = out.log_softmax(-1)
        probs = log_p.exp()
        log_prob = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy_each = -(probs * log_p).sum(-1)
        entropy = entropy_each.mean()
    log_ratio = log_prob - old_log_probs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    pg_loss = torch.max(unclipped, clipped).mean()
    d_log_prob = torch.where(unclipped >= clipped, unclipped, 0.0) / batch  # (-A) * r * [unclipped wins] / B

    if log_std is not None:
        d_out = d_log_prob.unsqueeze(-1) * z * inv_std  # d log pi / d mean = (a - mean) / std^2
        # d log pi / d log_std = z^2 - 1; the entropy's is 1
        log_std_grads = [(d_log_prob.unsqueeze(-1) * (z * z - 1)).sum(0) - ent_coef]
    else:
        one_hot = torch.zeros_like(probs).scatter_(-1, actions.unsqueeze(-1), 1.0)
        d_out = d_log_prob.unsqueeze(-1) * (one_hot - probs)  # d log softmax_a / d logits
        if ent_coef:  # d H / d logits = -p (log p + H), averaged over the batch
            d_out = d_out + (ent_coef / batch) * probs * (log_p + entropy_each.unsqueeze(-1))
        log_std_grads = []

    # value: 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))
    unclipped_v = (values - returns).pow(2)
    if value_clip_coef is None:
        v_loss = 0.5 * unclipped_v.mean()
        d_values = (values - returns) * (vf_coef / batch)
    else:
        step = values - old_values
        clipped_error = old_values + step.clamp(-value_clip_coef, value_clip_coef) - returns
        clipped_v = clipped_error.pow(2)
        v_loss = 0.5 * torch.max(unclipped_v, clipped_v).mean()
        # inside the clip range the clipped side still moves with V (and may win by a rounding error)
        d_clipped = clipped_error * (step.abs() <= value_clip_coef)
        d_values = torch.where(unclipped_v >= clipped_v, values - returns, d_clipped) * (vf_coef / batch)

    grads = (tanh_mlp_backward(actor, actor_act, d_out) + log_std_grads
             + tanh_mlp_backward(critic, critic_act, d_values.unsqueeze(-1)))
    return grads, (log_ratio, pg_loss, v_loss, entropy)


def adam_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
          step: torch.Tensor, lr: torch.Tensor, betas: tuple[float, float], eps: float) -> None:
    """One step of torch.optim.Adam (no weight decay, no amsgrad) in place; `step` and `lr` are 0-d tensors,
    so a compiled step does not recompile when the learning rate anneals."""
    beta1, beta2 = betas
    step.add_(1)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr / (1 - beta1**step)
    denom = exp_avg_sq.sqrt() / (1 - beta2**step).sqrt() + eps
    param.sub_(exp_avg / denom * step_size)


@dataclass(frozen=True)
class FlatLayout:
    """Where each parameter of a vector-input ActorCritic sits in one flat tensor: the actor's layers (weight,
    bias), the actor's log-std (Box actions), then the critic's layers."""

    shapes: tuple[torch.Size, ...]
    num_actor_layers: int
    continuous: bool

    @staticmethod
    def parameters(policy: ActorCritic) -> list[nn.Parameter]:
        actor = [p for layer in tanh_mlp_layers(policy.actor) for p in (layer.weight, layer.bias)]
        critic = [p for layer in tanh_mlp_layers(policy.critic) for p in (layer.weight, layer.bias)]
        return actor + ([policy.actor_log_std] if policy.continuous else []) + critic

    def views(self, flat: torch.Tensor) -> tuple[list[Layer], torch.Tensor | None, list[Layer]]:
        """(actor layers, log-std or None, critic layers) as views of `flat`."""
        tensors = [t.view(s) for t, s in zip(flat.split([s.numel() for s in self.shapes]), self.shapes)]
        split = 2 * self.num_actor_layers
        pairs = lambda ts: list(zip(ts[::2], ts[1::2]))  # noqa: E731
        log_std = tensors[split] if self.continuous else None
        return pairs(tensors[:split]), log_std, pairs(tensors[split + self.continuous:])


def flatten_parameters(policy: ActorCritic) -> tuple[nn.Parameter, FlatLayout]:
    """Re-seat every parameter of a vector-input policy as a view of one flat parameter (in `FlatLayout` order),
    so the gradient, its norm clip and Adam each run on one tensor instead of a loop over a dozen small ones.
    The policy's modules and state dict are unchanged."""
    if policy.pixel_encoder is not None or policy.scores_options:
        raise ValueError("the fused PPO step needs a vector-input policy (no CNN, no option scorer)")
    params = FlatLayout.parameters(policy)
    if len(params) != len(list(policy.parameters())):
        raise ValueError("the fused PPO step found parameters outside the actor and critic MLPs")
    layout = FlatLayout(tuple(p.shape for p in params), len(tanh_mlp_layers(policy.actor)), policy.continuous)
    flat = nn.Parameter(torch.cat([p.detach().flatten() for p in params]))
    names = {id(p): name for name, p in policy.named_parameters()}
    offset = 0
    for p in params:
        module_name, _, leaf = names[id(p)].rpartition(".")
        view = nn.Parameter(flat.data[offset:offset + p.numel()].view_as(p))  # shares flat's storage
        setattr(policy.get_submodule(module_name), leaf, view)
        offset += p.numel()
    return flat, layout


def ppo_minibatch_step(
    flat: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, step: torch.Tensor, lr: torch.Tensor,
    x: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor, old_values: torch.Tensor,
    returns: torch.Tensor, advantages: torch.Tensor, *, layout: FlatLayout, clip_coef: float,
    value_clip_coef: float | None, vf_coef: float, ent_coef: float, max_grad_norm: float,
    betas: tuple[float, float], eps: float,
) -> tuple[torch.Tensor, ...]:
    """Closed-form gradient -> clip its norm (torch.nn.utils.clip_grad_norm_'s rule) -> Adam, in place on the
    flat parameter and moments; returns the detached (log_ratio, pg_loss, v_loss, entropy)."""
    actor, log_std, critic = layout.views(flat)
    grads, stats = ppo_gradients(actor, log_std, critic, x, actions, old_log_probs, old_values, returns,
                                 advantages, clip_coef, value_clip_coef, vf_coef, ent_coef)
    grad = torch.cat([g.flatten() for g in grads])
    grad = grad * (max_grad_norm / (grad.norm() + 1e-6)).clamp(max=1.0)
    adam_(flat, grad, exp_avg, exp_avg_sq, step, lr, betas, eps)
    return stats


class FusedPPOStep:
    """Owns the flat parameter of a vector-input policy and its Adam state, and runs `ppo_minibatch_step` on it
    (through torch.compile when `compile`: one compilation for the fixed minibatch shape, 1-10 s on CPU)."""

    def __init__(self, policy: ActorCritic, *, clip_coef: float, value_clip_coef: float | None, vf_coef: float,
                 ent_coef: float, max_grad_norm: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-5, compile: bool = False) -> None:
        param, self.layout = flatten_parameters(policy)
        self.flat = param.detach()  # the same storage (the policy's parameters are views of it), outside autograd
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.step = torch.zeros((), device=self.flat.device)
        self.lr = torch.zeros((), device=self.flat.device)
        step = functools.partial(ppo_minibatch_step, layout=self.layout, clip_coef=clip_coef,
                                 value_clip_coef=value_clip_coef, vf_coef=vf_coef, ent_coef=ent_coef,
                                 max_grad_norm=max_grad_norm, betas=betas, eps=eps)
        self.run = torch.compile(step, dynamic=False) if compile else step

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor, old_values: torch.Tensor,
                 returns: torch.Tensor, advantages: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.run(self.flat, self.exp_avg, self.exp_avg_sq, self.step, self.lr, x, actions, old_log_probs,
                        old_values, returns, advantages)

    def set_lr(self, lr: float) -> None:
        self.lr.fill_(lr)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Adam's state (the parameters are saved with the policy; the learning rate is set at every update)."""
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "step": self.step}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in self.state_dict().items():
            if name not in state or state[name].shape != value.shape:
                raise ValueError(f"fused PPO optimizer state needs {name} of shape {tuple(value.shape)}; "
                                 f"the checkpoint has {tuple(state[name].shape) if name in state else 'none'}")
            value.copy_(state[name])
