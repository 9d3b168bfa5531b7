"""The networks: noisy layers, dueling heads, the conv layer computed as a matmul."""

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from baselax import networks


def _noisy_layer():
  net = hk.transform(lambda x: networks.NoisyLinear(3)(x))
  x = jnp.array([[1.0, -2.0, 0.5, 3.0]])
  return net, net.init(jax.random.PRNGKey(0), x), x


def test_noisy_layer_mean_is_the_mean_weights_and_noise_follows_the_key():
  net, params, x = _noisy_layer()
  mean = net.apply(params, None, x)      # no rng: the mean weights
  p = params["noisy_linear"]
  np.testing.assert_allclose(mean, x @ p["w_mu"] + p["b_mu"], rtol=1e-6)
  np.testing.assert_allclose(p["w_sigma"], 0.5 / np.sqrt(4))   # sigma0 / sqrt(p)
  keys = jax.random.split(jax.random.PRNGKey(1), 20000)
  samples = jax.vmap(lambda k: net.apply(params, k, x))(keys)
  assert float(jnp.std(samples)) > 0.1
  np.testing.assert_allclose(jnp.mean(samples, axis=0), mean, atol=0.03)
  a, b = net.apply(params, keys[0], x), net.apply(params, keys[1], x)
  assert not np.allclose(a, b)                                        # differs by key
  np.testing.assert_array_equal(a, net.apply(params, keys[0], x))     # fixed for a key


def test_noisy_layer_one_matmul_form_equals_the_per_row_form():
  """A call on many rows computes x @ (mu + sigma * outer(e_in, e_out)); a
  call on one row f(e_out) * ((x * f(e_in)) @ sigma): the same numbers."""
  net, params, _ = _noisy_layer()
  x = jax.random.normal(jax.random.PRNGKey(3), (5, 4))
  key = jax.random.PRNGKey(4)
  rows = jax.vmap(lambda row: net.apply(params, key, row[None])[0])(x)
  np.testing.assert_allclose(net.apply(params, key, x), rows, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dueling_hidden", ["shared", "per-stream"])
def test_dueling_head_mean_q_is_the_state_value(dueling_hidden):
  space = gymnasium.spaces.Discrete(3)
  net = networks.mlp_q_network((8,), dueling=True, dueling_hidden=dueling_hidden)(space)
  obs = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
  params = net.init(jax.random.PRNGKey(0), obs)
  q = net.apply(params, obs)
  if dueling_hidden == "per-stream":  # each stream its own copy of the hidden layers
    assert {"value/~/linear_0", "advantage/~/linear_1"} <= set(params)
    value_net = lambda x: hk.nets.MLP((8, 1), name="value")(x)  # noqa: E731
  else:  # one hidden stack, a linear layer per stream: a third of the parameters
    assert set(params) == {"hidden/~/linear_0", "value/~/linear_0", "advantage/~/linear_0"}
    value_net = lambda x: hk.nets.MLP((1,), name="value")(  # noqa: E731
        hk.nets.MLP((8,), activate_final=True, name="hidden")(x))
  value = hk.without_apply_rng(hk.transform(value_net)).apply(
      {k: v for k, v in params.items() if not k.startswith("advantage")}, obs)
  np.testing.assert_allclose(q.mean(-1, keepdims=True), value, rtol=1e-5, atol=1e-6)
  conv = networks.conv_q_network(dueling=True)(space)
  frames = jnp.zeros((2, 10, 10, 4))
  assert conv.apply(conv.init(jax.random.PRNGKey(0), frames), frames).shape == (2, 3)


def assert_float32_close(got, want):
  """Equal up to float32 rounding of sums of a few hundred terms: within
  5e-6 of the largest magnitude (a wrong window or weight order is off by
  the order of the values themselves)."""
  scale = float(np.max(np.abs(want)))
  np.testing.assert_allclose(got, want, rtol=0, atol=5e-6 * scale)


@pytest.mark.parametrize("kernel,stride,padding,shape", [
    (3, 1, "VALID", (10, 10, 4)), (3, 1, "SAME", (10, 10, 7)),
    (8, 4, "VALID", (84, 84, 4)), (4, 2, "SAME", (9, 11, 3))])
def test_conv_matmul_lowering_equals_the_convolution(kernel, stride, padding, shape):
  def net(lowering):
    return hk.without_apply_rng(hk.transform(lambda x: networks.Conv2D(
        5, kernel, stride=stride, padding=padding, lowering=lowering)(x)))
  x = jax.random.normal(jax.random.PRNGKey(0), (3, *shape))
  params = net("matmul").init(jax.random.PRNGKey(1), x)
  # The same parameters whatever the lowering (names, shapes, initial values).
  reference = net("xla").init(jax.random.PRNGKey(1), x)
  assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                   params, reference))
  out, want = net("matmul").apply(params, x), net("xla").apply(params, x)
  assert out.shape == want.shape
  assert_float32_close(out, want)
  loss = lambda low: lambda p, x: jnp.sum(jnp.sin(net(low).apply(p, x)))  # noqa: E731
  jax.tree.map(assert_float32_close, jax.grad(loss("matmul"), argnums=(0, 1))(params, x),
               jax.grad(loss("xla"), argnums=(0, 1))(params, x))


def test_conv_lowering_vmapped_over_params_and_refused_when_unknown():
  transformed = networks.conv_q_network(conv_lowering="matmul")(gymnasium.spaces.Discrete(6))
  reference = networks.conv_q_network(conv_lowering="xla")(gymnasium.spaces.Discrete(6))
  x = (jax.random.uniform(jax.random.PRNGKey(0), (4, 10, 10, 4)) < 0.2).astype(jnp.float32)
  params = jax.vmap(lambda k: transformed.init(k, x))(jax.random.split(jax.random.PRNGKey(1), 3))
  out = jax.vmap(transformed.apply, in_axes=(0, None))(params, x)
  want = jax.vmap(reference.apply, in_axes=(0, None))(params, x)
  assert_float32_close(out, want)
  with pytest.raises(ValueError, match="conv lowering must be one of auto, matmul, xla"):
    networks.conv_q_network(conv_lowering="im2col")
