"""Arrow batch functions the engines share (pyarrow only, so any engine module may import it)."""
import pyarrow as pa
import pyarrow.compute as pc


def add_net(t: pa.Table) -> pa.Table:
    """The core suite's map step: net = price * (1 - discount) * (1 + tax), in float64."""
    price, disc, tax = (pc.cast(t[c], pa.float64())
                        for c in ("l_extendedprice", "l_discount", "l_tax"))
    net = pc.multiply(pc.multiply(price, pc.subtract(1.0, disc)), pc.add(1.0, tax))
    return t.append_column("net", net)
