"""Plain-Python helpers shared by the example functions (a package layer: no dependencies)."""

from another_layer.module1 import line_total, order_total
from another_layer.module2 import word_stats

__all__ = ["line_total", "order_total", "word_stats"]
