"""The lecture's first graph, ``L = (a*b + c) * f``: gradients by hand, by nudging, by backward.

Run: ``python examples/expression_graph.py``. It follows the write-ups of
Karpathy's lecture: build the expression with labels, derive every gradient
by hand with the chain rule, check each one numerically by nudging one input
by ``h``, let ``L.backward()`` compute them all, list the tape, and take one
step along the gradient, which raises L from -8 to -7.286496.
"""

from __future__ import annotations

from tapegrad import Value
from tapegrad.viz import listing, to_dot

H = 0.001


def build(nudge: str = "", h: float = 0.0) -> dict[str, Value]:
    """The graph, with ``h`` added to the node named ``nudge``; every node by name."""

    def bump(name: str, v: Value) -> Value:
        return v + h if name == nudge else v

    a = bump("a", Value(2.0, label="a"))
    b = bump("b", Value(-3.0, label="b"))
    c = bump("c", Value(10.0, label="c"))
    e = bump("e", a * b)
    e.label = "e"
    d = bump("d", e + c)
    d.label = "d"
    f = bump("f", Value(-2.0, label="f"))
    L = bump("L", d * f)
    L.label = "L"
    return {"a": a, "b": b, "c": c, "e": e, "d": d, "f": f, "L": L}


def main() -> None:
    nodes = build()
    a, b, c, d, f, L = (nodes[k] for k in "abcdfL")
    print(f"L = (a*b + c) * f = {L.data}")

    # By hand, from the output back: L = d * f, d = e + c, e = a * b.
    manual = {"L": 1.0}
    manual["d"] = f.data * manual["L"]  # dL/dd = f
    manual["f"] = d.data * manual["L"]  # dL/df = d
    manual["e"] = 1.0 * manual["d"]  # a plus node routes the gradient unchanged
    manual["c"] = 1.0 * manual["d"]
    manual["a"] = b.data * manual["e"]  # chain rule: dL/da = dL/de * de/da = dL/de * b
    manual["b"] = a.data * manual["e"]

    L.backward()
    print()
    print(f"node  by hand  nudged by h={H}  backward()")
    for name in "abcefdL":
        nudged = (build(name, H)["L"].data - L.data) / H
        auto = nodes[name].grad
        print(f"{name:4}  {manual[name]:7.1f}  {nudged:16.6f}  {auto:10.1f}")

    print()
    print(listing(L))
    print()
    print(to_dot(L), end="")

    # One step of gradient ascent on the leaves: L must go up.
    for leaf in (a, b, c, f):
        leaf.data += 0.01 * leaf.grad
    e2 = a * b
    d2 = e2 + c
    L2 = d2 * f
    print()
    print(f"after a step of 0.01 along the gradient: L = {L2.data:.6f}")


if __name__ == "__main__":
    main()
