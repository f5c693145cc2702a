"""A tour of relulab.landscape: the loss landscape of a network in its parameters.

1. A shallow ReLU net on data: the rank of its parameterization's Jacobian on its activation region.
2. Kink-aware stationarity: the all-zero network sits on every kink; autograd reports a zero gradient,
   the exact directional analysis finds escape neurons and a second-order descent direction.
3. A network embedding (splitting a neuron) keeps function, loss and the verdict.
4. A Gaussian teacher-student problem: a critical point polished to gradient norm 1e-12 in closed
   form, with its isotropy group.
5. The Hessian spectrum of a trained classifier's loss, with a check against the dense Hessian.

Run: .venv/bin/python examples/landscape_tour.py   (a few seconds)
"""

import torch
from torch import nn

from relulab import landscape as ls

torch.manual_seed(0)
d, m, n = 2, 6, 10
X = torch.randn(n, d, dtype=torch.float64)
Y = torch.randn(n, 1, dtype=torch.float64)

# 1. Jacobian rank of (W, b) -> (f(x_1), ..., f(x_n)) on the activation region of a random point
module = nn.Sequential(nn.Linear(d, m), nn.ReLU(), nn.Linear(m, 1)).double()
net = ls.ShallowNet.from_torch(module, trainable="first")
region = ls.parameter_region(net, X, Y)
print(f"1. rank {region.rank} of {region.n_outputs} rows (n o), {region.n_parameters} parameters: "
      f"full rank {region.full_rank}, region non-empty {region.nonempty}, "
      f"contains a global minimum {region.has_global_minimum}")

# 2. the zero network (output bias = mean target): every (neuron, sample) pair is on a kink
zero = ls.ShallowNet(W=torch.zeros(3, d, dtype=torch.float64), a=torch.zeros(3, 1, dtype=torch.float64),
                     b=torch.zeros(3, dtype=torch.float64), c=Y.mean(0))
res = ls.directional_stationarity(zero, X, Y, n_probe=50)
print(f"2. autograd |grad| = {res.gradient_autograd_norm:.1e}, kinks {res.n_kinks}: {res.verdict}; escape neurons "
      f"{res.escape_neurons}, second-order coefficient q = {res.saddle_second_order:.4f} "
      f"(decrease observed: {res.saddle_verified})")

# 3. split a neuron of a net and check what carries over
full = ls.ShallowNet.from_torch(module)
wide, emb = ls.split_neuron(full, 0, ratio=0.3)
chk = ls.check_embedding(full, X, Y, wide, emb)
print(f"3. split neuron 0: max |f_wide - f| = {chk.max_function_difference:.1e}, loss difference "
      f"{chk.loss_difference:.1e}, verdict {chk.narrow_verdict!r} -> {chk.wide_verdict!r}, consistent {chk.consistent}")

# 4. teacher-student, d = k = 5: one critical point from one random start
problem = ls.TeacherStudent.identity(5)
cp = ls.find_critical_point(problem, seed=1)
iso = ls.isotropy_group(cp.W)
print(f"4. teacher-student d = k = 5: {cp.kind}, loss {cp.loss:.10f}, |grad| {cp.grad_norm:.1e}, "
      f"isotropy {iso.description} (order {iso.order}), Hessian eigenvalues "
      f"{float(cp.eigenvalues.min()):.4g} .. {float(cp.eigenvalues.max()):.4g}")

# 5. Hessian of a small trained classifier
clf = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)).double()
Xc = torch.randn(60, 2, dtype=torch.float64)
yc = (Xc[:, 0] > 0).long() + (Xc[:, 1] > 0).long()
opt = torch.optim.Adam(clf.parameters(), lr=0.05)
for _ in range(200):
    opt.zero_grad()
    nn.functional.cross_entropy(clf(Xc), yc).backward()
    opt.step()
spec = ls.hessian_spectrum(clf, "cross_entropy", Xc, yc, top=3, bottom=2)
dense = torch.linalg.eigvalsh(ls.HessianOperator(clf, "cross_entropy", Xc, yc).dense())
print("5. " + spec.table().replace("\n", "\n   "))
print(f"   dense check: largest {dense[-1]:.6g}, smallest {dense[0]:.3g}")
