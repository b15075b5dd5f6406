"""The tolerance rule of the ring tests (flash-attn's method)."""


def assert_matches_reference(results, atol):
    """error(ring vs fp64) <= 2 * error(same-precision single device vs fp64) + atol, for
    every quantity on every rank (None = rank outside the group)."""
    failures = []
    for rank, metrics in enumerate(results):
        if metrics is None:
            continue
        for name, (err, base) in metrics.items():
            bound = 2 * base + (atol[name] if isinstance(atol, dict) else atol)
            if not err <= bound:
                failures.append(f"rank {rank} {name}: error {err:.3g} > bound {bound:.3g} "
                                f"(same-precision error {base:.3g})")
    assert not failures, "\n".join(failures)
