"""Many small linear programs at once: a dense primal simplex over a batch, in torch.

Every problem of a batch has the same shape,

    minimize  c . z   subject to   A z <= beta,   z in R^m free,   beta >= 0,

so ``z = 0`` is a feasible start (the callers shift their variables to a known interior point).
The simplex runs in dictionary form (Chvatal, *Linear Programming*, 1983, ch. 2-3): the basic
variables are affine in the nonbasic ones, ``x_B = D0 + D x_N``, the objective ``c . z = o0 + r . x_N``.
Initially the slacks ``sigma = beta - A z`` are basic and ``z`` nonbasic. A free nonbasic variable
enters in whichever direction improves the objective and, once basic, never leaves (it has no bound,
so it takes no part in the ratio test); a slack enters when its reduced cost is negative. Entering
columns follow Dantzig's rule (largest reduced cost), switching to Bland's rule (smallest label,
which cannot cycle) for problems still running after ``2 (n + m)`` pivots. All problems pivot in the
same tensor operations; finished ones leave the working set.

At an optimum every nonbasic slack has ``r_j >= 0`` and every nonbasic free variable ``r_j = 0``,
which is a dual certificate: ``c . z = o0 + sum_j r_j sigma_j >= o0`` for every feasible ``z``. The
multipliers ``lam`` (one per constraint, zero for basic slacks) are returned so that callers can
verify such a bound independently (in float64 with an error bound, or exactly); the simplex itself
is a float64 heuristic whose answers are never trusted without that verification.

:func:`lp_batch_dual` starts instead from a given basis of ``m`` rows whose multipliers are
non-negative (a dual feasible basis: the rows' vertex is optimal for the problem cut down to those
rows), and runs the dual simplex (Lemke 1954; Chvatal ch. 10): while some basic slack is negative,
the most negative one leaves and the nonbasic slack with the smallest ratio ``r_j / D_ij`` among
those that raise it enters, which keeps every reduced cost non-negative. When the start basis is
close to the optimal one (a cell inside the simplex of its start rows, cut by a few more rows) this
takes a few pivots where the primal method needs at least ``m`` just to bring in the free variables.
"""

from __future__ import annotations

import torch

OPTIMAL, UNBOUNDED, ITERATIONS = 0, 1, 2


def lp_batch(A: torch.Tensor, beta: torch.Tensor, c: torch.Tensor, eps: float = 1e-11, max_iter: int | None = None):
    """Solve the batch (see the module docstring). ``A`` (B, n, m), ``beta`` (B, n) >= 0, ``c`` (B, m).

    Returns ``(z, obj, lam, status)``: ``z`` (B, m) an optimal vertex, ``obj`` (B,) ``c . z``, ``lam``
    (B, n) >= 0 the multipliers (``c = -lam A`` and ``obj = -lam . beta`` up to rounding at an
    optimum), ``status`` (B,) OPTIMAL, UNBOUNDED or ITERATIONS."""
    B, n, m = A.shape
    dev, dt = A.device, A.dtype
    if max_iter is None:
        max_iter = 6 * (n + m) + 20
    bland_after = 2 * (n + m)
    # one tableau: rows 0..n-1 the basic variables, row n the objective; columns 0..m-1 the
    # nonbasic variables, column m the constant
    T = torch.empty(B, n + 1, m + 1, dtype=dt, device=dev)
    T[:, :n, :m] = -A
    T[:, :n, m] = beta
    T[:, n, :m] = c
    T[:, n, m] = 0.0
    nb = torch.arange(m, device=dev).expand(B, m).clone()  # labels of nonbasic variables
    bs = (m + torch.arange(n, device=dev)).expand(B, n).clone()  # labels of basic variables
    status = torch.full((B,), ITERATIONS, dtype=torch.long, device=dev)
    fT, fnb, fbs = T.clone(), nb.clone(), bs.clone()  # final tableaux
    idx = torch.arange(B, device=dev)
    big = torch.finfo(dt).max
    it = 0
    while idx.numel() and it < max_iter:
        r = T[:, n, :m]
        D0 = T[:, :n, m]
        free = nb < m
        # free variables enter first (each once: a basic free variable never leaves), whether or not
        # they improve the objective, so that at the end every nonbasic variable is a slack and the
        # reduced costs are exactly the multipliers of a square basis
        improving = torch.where(free, torch.ones_like(free), r < -eps)
        if it >= bland_after:
            score = torch.where(improving, -nb.to(dt), torch.full_like(r, -big))
        else:
            score = torch.where(improving, r.abs(), torch.full_like(r, -1.0))
        score = torch.where(free, torch.full_like(r, big), score)
        j = score.argmax(1)
        jc = j[:, None]
        rj = r.gather(1, jc)[:, 0]
        jfree = nb.gather(1, jc)[:, 0] < m
        Cc = T.gather(2, jc[:, None, :].expand(-1, n + 1, 1))[:, :, 0]  # (Bw, n+1): column j
        slack_rows = bs >= m
        can_up = (slack_rows & (Cc[:, :n] < -eps)).any(1)
        direction = torch.where(jfree & (rj.abs() > eps), -torch.sign(rj),
                                torch.where(jfree & ~can_up, -torch.ones_like(rj), torch.ones_like(rj)))
        col = Cc[:, :n] * direction[:, None]  # change of each basic variable per unit step
        elig = slack_rows & (col < -eps)
        ratio = torch.where(elig, D0.clamp_min(0.0) / (-col).clamp_min(1e-300), torch.full_like(D0, big))
        rmin = ratio.min(1, keepdim=True).values  # >= 0
        # ties: the smallest label (Bland's rule, which with Bland's entering rule cannot cycle)
        tied = elig & (ratio <= rmin * (1 + 1e-12) + 1e-300)
        row = torch.where(tied, bs, torch.full_like(bs, 1 << 40)).argmin(1)
        done = ~improving.any(1)
        unb = ~elig.any(1) & ~done
        fin = done | unb
        if bool(fin.any()):
            fi = idx[fin]
            status[fi] = torch.where(done[fin], OPTIMAL, UNBOUNDED)
            fT[fi], fnb[fi], fbs[fi] = T[fin], nb[fin], bs[fin]
            keep = (~fin).nonzero().squeeze(1)
            if keep.numel() == 0:
                idx = idx[:0]
                break
            idx, T, nb, bs, j, row, Cc = idx[keep], T[keep], nb[keep], bs[keep], j[keep], row[keep], Cc[keep]
            jc = j[:, None]
        _pivot(T, nb, bs, row, j, Cc)
        it += 1
    lp_batch.iterations = it
    if idx.numel():
        fT[idx], fnb[idx], fbs[idx] = T, nb, bs
    return _solution(fT, fnb, fbs, status)


def _pivot(T, nb, bs, row, j, Cc=None):
    """Exchange basic row ``row`` and nonbasic column ``j`` of every dictionary (in place)."""
    n1, m1 = T.shape[1], T.shape[2]
    jc, rc = j[:, None], row[:, None]
    if Cc is None:
        Cc = T.gather(2, jc[:, None, :].expand(-1, n1, 1))[:, :, 0]
    R = T.gather(1, rc[:, :, None].expand(-1, 1, m1))[:, 0]  # (Bw, m+1): pivot row
    piv = R.gather(1, jc)
    newrow = -R / piv
    newrow.scatter_(1, jc, 1.0 / piv)
    T.scatter_(2, jc[:, None, :].expand(-1, n1, 1), 0.0)
    T.addcmul_(Cc[:, :, None], newrow[:, None, :])
    T.scatter_(1, rc[:, :, None].expand(-1, 1, m1), newrow[:, None, :])
    lab_in, lab_out = nb.gather(1, jc), bs.gather(1, rc)
    nb.scatter_(1, jc, lab_out)
    bs.scatter_(1, rc, lab_in)


def _solution(fT, fnb, fbs, status):
    B, n1, m1 = fT.shape
    n, m = n1 - 1, m1 - 1
    dt, dev = fT.dtype, fT.device
    # primal solution: basic free variables take their row's value, nonbasic ones are 0
    z = torch.zeros(B, m + n, dtype=dt, device=dev)
    z.scatter_(1, fbs, fT[:, :n, m])
    z = z[:, :m].contiguous()
    fr = fT[:, n, :m]
    lam = torch.zeros(B, m + n, dtype=dt, device=dev)
    lam.scatter_(1, fnb, fr.clamp_min(0.0) * (fnb >= m))
    lam = lam[:, m:].contiguous()
    return z, fT[:, n, m].clone(), lam, status


def lp_batch_dual(A: torch.Tensor, beta: torch.Tensor, c: torch.Tensor, basis: torch.Tensor, eps: float = 1e-11,
                  max_iter: int | None = None):
    """The problems of :func:`lp_batch` by the dual simplex from the start basis ``basis`` (B, m):
    row indices whose ``m x m`` block is invertible with non-negative multipliers (see the module
    docstring). Same returns; problems whose start basis is singular or not dual feasible, that
    stall, or that end with a negative reduced cost come back with status ITERATIONS (solve them
    with :func:`lp_batch`)."""
    B, n, m = A.shape
    dev, dt = A.device, A.dtype
    if max_iter is None:
        max_iter = 4 * (n + m) + 20
    bland_after = 2 * (n + m)
    AB = A.gather(1, basis[:, :, None].expand(B, m, m))
    Binv, info = torch.linalg.inv_ex(AB)
    z0 = (Binv @ beta.gather(1, basis)[:, :, None])[:, :, 0]
    r = -(c[:, None, :] @ Binv)[:, 0]  # reduced costs of the basis rows' slacks
    good = (info == 0) & torch.isfinite(Binv).flatten(1).all(1) & (r >= -eps).all(1)
    T = torch.empty(B, n + 1, m + 1, dtype=dt, device=dev)
    # sigma_i = beta_i - A_i z with z = z0 - Binv sigma_B
    T[:, :n, :m] = A @ Binv
    T[:, :n, m] = beta - (A @ z0[:, :, None])[:, :, 0]
    zrows = torch.cat([-Binv, z0[:, :, None]], 2)  # the free variables, basic in the basis rows' places
    T[:, :n].scatter_(1, basis[:, :, None].expand(B, m, m + 1), zrows)
    T[:, n, :m] = r.clamp_min(0.0)
    T[:, n, m] = (c * z0).sum(1)
    nb = (m + basis).clone()
    bs = (m + torch.arange(n, device=dev)).expand(B, n).clone()
    bs.scatter_(1, basis, torch.arange(m, device=dev).expand(B, m).contiguous())
    status = torch.full((B,), ITERATIONS, dtype=torch.long, device=dev)
    T = torch.where(good[:, None, None], T, torch.zeros_like(T))
    fT, fnb, fbs = T.clone(), nb.clone(), bs.clone()
    idx = good.nonzero().squeeze(1)
    T, nb, bs = T[idx], nb[idx], bs[idx]
    big = torch.finfo(dt).max
    it = 0
    while idx.numel() and it < max_iter:
        D0 = T[:, :n, m]
        infeas = (bs >= m) & (D0 < -eps)
        if it >= bland_after:
            score = torch.where(infeas, -bs.to(dt), torch.full_like(D0, -big))
        else:
            score = torch.where(infeas, -D0, torch.full_like(D0, -1.0))
        row = score.argmax(1)
        R = T.gather(1, row[:, None, None].expand(-1, 1, m + 1))[:, 0, :m]
        rr = T[:, n, :m]
        elig = R > eps
        ratio = torch.where(elig, rr.clamp_min(0.0) / R.clamp_min(1e-300), torch.full_like(rr, big))
        rmin = ratio.min(1, keepdim=True).values
        tied = elig & (ratio <= rmin * (1 + 1e-12) + 1e-300)
        j = torch.where(tied, nb, torch.full_like(nb, 1 << 40)).argmin(1)
        done = ~infeas.any(1)
        stuck = ~elig.any(1) & ~done  # primal infeasible in float64: left to the primal method
        fin = done | stuck
        if bool(fin.any()):
            fi = idx[fin]
            # optimal only with every reduced cost still non-negative
            opt = done[fin] & (T[fin][:, n, :m] >= -eps).all(1)
            status[fi] = torch.where(opt, OPTIMAL, ITERATIONS)
            fT[fi], fnb[fi], fbs[fi] = T[fin], nb[fin], bs[fin]
            keep = (~fin).nonzero().squeeze(1)
            if keep.numel() == 0:
                idx = idx[:0]
                break
            idx, T, nb, bs, j, row = idx[keep], T[keep], nb[keep], bs[keep], j[keep], row[keep]
        _pivot(T, nb, bs, row, j)
        it += 1
    lp_batch_dual.iterations = it
    if idx.numel():
        fT[idx], fnb[idx], fbs[idx] = T, nb, bs
    return _solution(fT, fnb, fbs, status)
