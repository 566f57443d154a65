# The benchmarks' table printing (bench-gateway.sh, bench-stack.sh, bench-many.sh import it):
# a figure or "-", and aligned columns under a ruled header.


def f(v, fmt="{:.2f}"):
    """A figure in `fmt`, or "-" when it was not measured."""
    return "-" if v is None else fmt.format(v)


def print_table(table, left=1, blank_before=lambda i: False):
    """Prints `table` (header row first): the first `left` columns left-aligned, the rest right;
    a rule under the header; an empty line before data row i (1-based) when blank_before(i)."""
    w = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for i, line in enumerate(table):
        if i > 0 and blank_before(i):
            print()
        print("  ".join(c.ljust(w[j]) if j < left else c.rjust(w[j]) for j, c in enumerate(line)))
        if i == 0:
            print("  ".join("-" * x for x in w))
