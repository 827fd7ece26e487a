"""PPO's minibatch gradient in closed form for the vector-input actor-critic (two tanh MLPs with the same hidden
widths over the same input; a Gaussian or categorical head). It computes what autograd computes for PPO's loss
(tested to float rounding) with about a third of the tensor operations and none of autograd's bookkeeping.

Why: with 64-unit networks on a CPU an update is hundreds of tiny kernels, and their Python / dispatcher overhead
costs more than the arithmetic. Two things cut it: the backward pass written out, and the actor and critic
stacked so that their first layers are one matmul and their activations one tensor (`StackedActorCritic`). Pixel and text policies (CNN,
sentence embeddings) keep the autograd path.

Notation for a minibatch of B transitions: r = exp(log pi(a|s) - log pi_old(a|s)), A the (normalised)
advantages, V the critic, R the returns, eps the clip coefficients.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from agents.ppo_policy import ActorCritic, Tanh


def tanh_mlp_layers(net: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of an `mlp(..., activation=Tanh)`; raises if the net has any other structure."""
    layers = [m for m in net if isinstance(m, nn.Linear)]
    if any(not isinstance(m, (nn.Linear, Tanh)) for m in net) or len(net) != 2 * len(layers) - 1:
        raise ValueError(f"fused PPO gradients need a Linear/Tanh MLP, got {net}")
    return layers


def tanh_(z: torch.Tensor) -> torch.Tensor:
    """tanh(z) = 2 sigmoid(2z) - 1, as `Tanh` (torch's CPU tanh kernel is slower)."""
    return torch.sigmoid(2 * z).mul_(2).sub_(1)


def tanh_backward(d_h: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """dLoss/dz from dLoss/dh for h = tanh(z): d_h * (1 - h^2)."""
    return torch.addcmul(d_h, d_h * h, h, value=-1.0)


class StackedActorCritic:
    """The policy's parameters re-seated as views of one flat parameter, laid out layer by layer so that each
    hidden layer's critic and actor weights are one (2, out, in) block (critic first): the input layer of both
    nets is then a single matmul, and each elementwise step of the hidden layers runs once for both nets. Their `.grad`s are views of one
    flat gradient, so Adam and the grad-norm clip each run as one kernel. The modules keep working as before
    (acting, state dicts); only the storage moves.
    """

    def __init__(self, policy: ActorCritic) -> None:
        if policy.pixel_encoder is not None or policy.scores_options:
            raise ValueError("fused PPO gradients cover vector-input policies; pixel and text policies use autograd")
        self.policy = policy
        self.critic, self.actor = tanh_mlp_layers(policy.critic), tanh_mlp_layers(policy.actor)
        hidden_pairs = list(zip(self.critic[:-1], self.actor[:-1]))
        order = [layer.weight for pair in hidden_pairs for layer in pair]
        order += [layer.bias for pair in hidden_pairs for layer in pair]
        order += [self.critic[-1].weight, self.critic[-1].bias, self.actor[-1].weight, self.actor[-1].bias]
        if policy.continuous:
            order.append(policy.actor_log_std)
        if len(order) != len(list(policy.parameters())):
            raise ValueError("the policy has parameters outside its actor and critic MLPs")

        self.flat = nn.Parameter(torch.cat([p.detach().flatten() for p in order]))
        self.flat.grad = torch.zeros_like(self.flat)
        names = {id(p): name for name, p in policy.named_parameters()}
        offset = 0
        for p in order:
            view = nn.Parameter(self.flat.data[offset:offset + p.numel()].view_as(p))  # shares flat's storage
            view.grad = self.flat.grad[offset:offset + p.numel()].view_as(p)
            module_name, _, leaf = names[id(p)].rpartition(".")
            setattr(policy.get_submodule(module_name), leaf, view)
            offset += p.numel()

        # (2, out, in) weight and (2, out) bias blocks of the hidden layers, and their gradients
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        for critic_layer, actor_layer in zip(self.critic[:-1], self.actor[:-1]):
            self.weights.append(self.stacked(critic_layer.weight, actor_layer.weight))
            self.biases.append(self.stacked(critic_layer.bias, actor_layer.bias))
            self.weight_grads.append(self.stacked(critic_layer.weight.grad, actor_layer.weight.grad))
            self.bias_grads.append(self.stacked(critic_layer.bias.grad, actor_layer.bias.grad))

    @staticmethod
    def stacked(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The (2, ...) view over two adjacent same-shape tensors of the flat storage."""
        block = first.detach().as_strided((2, *first.shape), (first.numel(), *first.stride()))
        assert block[1].data_ptr() == second.data_ptr()
        return block

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Hidden activations of both nets, each (2, B, H) (critic, actor), for inputs x (B, D)."""
        w0, b0 = self.weights[0], self.biases[0]
        h = tanh_(torch.addmm(b0.flatten(), x, w0.flatten(0, 1).t()))  # (B, 2H): both input layers in one matmul
        activations = [h.view(x.shape[0], 2, -1).transpose(0, 1)]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            # one matmul per net (CPU bmm is slower than two mm at these sizes), one tanh for both
            z = x.new_empty(2, x.shape[0], w.shape[1])
            for net in range(2):
                torch.addmm(b[net], activations[-1][net], w[net].t(), out=z[net])
            activations.append(tanh_(z))
        return activations

    def backward(self, x: torch.Tensor, activations: list[torch.Tensor], d_values: torch.Tensor,
                 d_out: torch.Tensor) -> None:
        """Write every weight's and bias's gradient, given dLoss/dV (B,) and dLoss/d(actor output) (B, A)."""
        h = activations[-1]
        critic_head, actor_head = self.critic[-1], self.actor[-1]
        d_values = d_values.unsqueeze(-1)
        torch.mm(d_values.t(), h[0], out=critic_head.weight.grad)
        torch.sum(d_values, 0, out=critic_head.bias.grad)
        torch.mm(d_out.t(), h[1], out=actor_head.weight.grad)
        torch.sum(d_out, 0, out=actor_head.bias.grad)
        d_h = torch.stack([d_values @ critic_head.weight, d_out @ actor_head.weight])  # (2, B, H)
        for i in reversed(range(len(self.weights))):
            d_z = tanh_backward(d_h, activations[i])  # (2, B, H_i)
            torch.sum(d_z, 1, out=self.bias_grads[i])
            layer_input = activations[i - 1] if i > 0 else (x, x)
            for net in range(2):
                torch.mm(d_z[net].t(), layer_input[net], out=self.weight_grads[i][net])
            if i > 0:
                d_h = x.new_empty(activations[i - 1].shape)
                for net in range(2):
                    torch.mm(d_z[net], self.weights[i][net], out=d_h[net])

    def gradients(
        self,
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
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fill the flat gradient with d/dtheta of pg_loss - ent_coef * entropy + vf_coef * v_loss on the
        minibatch x (B, D); returns (log_ratio (B,), pg_loss, v_loss, entropy), detached.

        The gradients of the two `max` terms follow autograd's rule: at a tie each side gets half, which sums to
        the unclipped gradient (both sides are equal exactly when the ratio is inside the clip range).
        """
        policy, batch = self.policy, x.shape[0]
        with torch.no_grad():
            activations = self.forward(x)
            h = activations[-1]
            critic_head, actor_head = self.critic[-1], self.actor[-1]
            values = torch.addmm(critic_head.bias, h[0], critic_head.weight.t()).squeeze(-1)
            out = torch.addmm(actor_head.bias, h[1], actor_head.weight.t())

            # policy: d pg_loss / d log pi = -A r / B where the unclipped term is the max, else 0
            if policy.continuous:
                log_std = policy.actor_log_std
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
            d_log_prob = torch.where(unclipped >= clipped, unclipped, 0.0).div_(batch)  # (-A) r [unclipped wins] / B

            if policy.continuous:
                d_out = d_log_prob.unsqueeze(-1) * z * inv_std  # d log pi / d mean = (a - mean) / std^2
                # d log pi / d log_std = z^2 - 1; the entropy's is 1
                policy.actor_log_std.grad.copy_((d_log_prob.unsqueeze(-1) * (z * z - 1)).sum(0)).sub_(ent_coef)
            else:
                one_hot = torch.zeros_like(probs).scatter_(-1, actions.unsqueeze(-1), 1.0)
                d_out = d_log_prob.unsqueeze(-1) * (one_hot - probs)  # d log softmax_a / d logits
                if ent_coef:  # d H / d logits = -p (log p + H), averaged over the batch
                    d_out += (ent_coef / batch) * probs * (log_p + entropy_each.unsqueeze(-1))

            # value: 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))
            unclipped_v = (values - returns).pow(2)
            if value_clip_coef is None:
                v_loss = 0.5 * unclipped_v.mean()
                d_values = (values - returns).mul_(vf_coef / batch)
            else:
                step = values - old_values
                clipped_error = old_values + step.clamp(-value_clip_coef, value_clip_coef) - returns
                clipped_v = clipped_error.pow(2)
                v_loss = 0.5 * torch.max(unclipped_v, clipped_v).mean()
                # inside the clip range the clipped side still moves with V (and may win by a rounding error)
                d_clipped = clipped_error * (step.abs() <= value_clip_coef)
                d_values = torch.where(unclipped_v >= clipped_v, values - returns, d_clipped).mul_(vf_coef / batch)

            self.backward(x, activations, d_values, d_out)
        return log_ratio, pg_loss, v_loss, entropy
