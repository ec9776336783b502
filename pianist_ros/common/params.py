"""One declarative parameter schema per node; everything else is derived from it.

The schema (a tuple of :class:`Param`) drives the ``declare_parameter`` calls with
descriptors, the validation callback, the README tables, and the test that compares
each schema with ``config/pianist.yaml``. This module is ROS-free except for
:func:`declare` and :func:`make_validator`, which import rclpy lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Iterable, Mapping, Sequence

_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One node parameter: name, default, description and constraints.

    :param name: snake_case name, dotted for groups (``reconnect.initial_delay``).
    :param default: default value; its type is the parameter's type (bool, int,
        float, str, or a list of str / float / int, which must be non-empty).
    :param description: one line for operators, with the unit.
    :param min_value: inclusive lower bound for int / float.
    :param max_value: inclusive upper bound for int / float.
    :param choices: allowed values for str parameters.
    :param read_only: only for values that can never change at run time.
    :param applies: when a change takes effect, e.g. ``'next configure'``.
    """

    name: str
    default: Any
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    applies: str = 'immediately'

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or ' ' in self.name:
            raise ValueError(f'parameter name must be snake_case: {self.name!r}')
        if isinstance(self.default, list):
            if not self.default:
                raise ValueError(f'{self.name}: list defaults must be non-empty')
        elif not isinstance(self.default, _SCALARS):
            raise TypeError(f'{self.name}: unsupported default type {type(self.default)}')
        if not self.description:
            raise ValueError(f'{self.name}: description is required')
        err = check_value(self, self.default)
        if err:
            raise ValueError(f'{self.name}: default is invalid: {err}')

    @property
    def type_name(self) -> str:
        """Return the parameter type as a short name (bool, int, float, str, list[...])."""
        if isinstance(self.default, list):
            return f'list[{type(self.default[0]).__name__}]'
        return type(self.default).__name__

    @property
    def field(self) -> str:
        """Return the dataclass field name (dots become underscores)."""
        return self.name.replace('.', '_')

    def constraint_text(self) -> str:
        """Return the human-readable constraint (range or choices), or ''."""
        parts = []
        if self.min_value is not None or self.max_value is not None:
            lo = '-inf' if self.min_value is None else f'{self.min_value:g}'
            hi = 'inf' if self.max_value is None else f'{self.max_value:g}'
            parts.append(f'[{lo}, {hi}]')
        if self.choices:
            parts.append('one of ' + ', '.join(self.choices))
        return '; '.join(parts)


def check_value(param: Param, value: Any) -> str | None:
    """Check one value against its parameter; return an error reason or ``None``.

    Never raises: the result feeds ``SetParametersResult``.
    """
    expected = param.default
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            return f'{param.name} must be a bool, got {value!r}'
        return None
    if isinstance(expected, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return f'{param.name} must be an integer, got {value!r}'
    elif isinstance(expected, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f'{param.name} must be a number, got {value!r}'
        if math.isnan(float(value)):
            return f'{param.name} must not be NaN'
    elif isinstance(expected, str):
        if not isinstance(value, str):
            return f'{param.name} must be a string, got {value!r}'
        if param.choices and value not in param.choices:
            return f'{param.name} must be one of {", ".join(param.choices)}, got {value!r}'
        return None
    elif isinstance(expected, list):
        if not isinstance(value, (list, tuple)):
            return f'{param.name} must be a list, got {value!r}'
        return None
    if param.min_value is not None and value < param.min_value:
        return f'{param.name} must be >= {param.min_value:g}, got {value!r}'
    if param.max_value is not None and value > param.max_value:
        return f'{param.name} must be <= {param.max_value:g}, got {value!r}'
    return None


def check_values(schema: Sequence[Param], values: Mapping[str, Any]) -> str | None:
    """Check several ``name -> value`` pairs; return the first error or ``None``.

    Names that are not in the schema pass (rclpy itself refuses undeclared ones, and
    the diagnostic updater declares its own).
    """
    by_name = {p.name: p for p in schema}
    for name, value in values.items():
        param = by_name.get(name)
        if param is None:
            continue
        err = check_value(param, value)
        if err:
            return err
    return None


def defaults(schema: Iterable[Param]) -> dict[str, Any]:
    """Return ``{field: default}`` for building a config dataclass without ROS."""
    return {p.field: _copy(p.default) for p in schema}


def merge_values(schema: Sequence[Param], values: Mapping[str, Any] | None,
                 owner: str = 'node') -> dict[str, Any]:
    """Return ``{field: value}``: the schema defaults overridden by checked ``values``.

    Keys may be parameter names (``health.url``) or field names (``health_url``); an
    int given for a float parameter becomes a float. This is how the ROS-free code
    (tools, tests) builds the same config a node builds from its parameters.

    :raises ValueError: on an unknown key or a value the schema refuses.
    """
    by_key = {p.field: p for p in schema}
    by_key.update({p.name: p for p in schema})
    merged = defaults(schema)
    for key, value in (values or {}).items():
        param = by_key.get(key)
        if param is None:
            raise ValueError(f'unknown {owner} parameter: {key!r}')
        if isinstance(param.default, float) and isinstance(value, int) \
                and not isinstance(value, bool):
            value = float(value)
        err = check_value(param, value)
        if err:
            raise ValueError(err)
        merged[param.field] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def markdown_table(schema: Sequence[Param]) -> str:
    """Render the schema as a Markdown table for the docs."""
    rows = ['| parameter | type | default | constraint | applies | description |',
            '| --- | --- | --- | --- | --- | --- |']
    for p in schema:
        rows.append(f'| `{p.name}` | {p.type_name} | `{p.default!r}` | '
                    f'{p.constraint_text()} | {p.applies} | {p.description} |')
    return '\n'.join(rows)


# ---- rclpy glue (lazy imports keep the rest of this module ROS-free) ----------------

def make_validator(schema: Sequence[Param]):
    """Return an ``on_set_parameters`` callback that validates against ``schema``.

    The callback never raises; it returns ``SetParametersResult(successful, reason)``.
    """
    from rcl_interfaces.msg import SetParametersResult

    def _validate(parameters) -> SetParametersResult:
        try:
            err = check_values(schema, {p.name: p.value for p in parameters})
        except Exception as exc:  # noqa: BLE001 - a validator must never raise
            err = f'validation failed: {exc}'
        return SetParametersResult(successful=err is None, reason=err or '')

    return _validate


def declare(node, schema: Sequence[Param]) -> None:
    """Register the validator, then declare every parameter with a descriptor.

    Registering first means values from YAML / overrides are validated too; an
    invalid override raises ``rclpy.exceptions.InvalidParameterValueException``.
    """
    from rcl_interfaces.msg import FloatingPointRange
    from rcl_interfaces.msg import IntegerRange
    from rcl_interfaces.msg import ParameterDescriptor

    node.add_on_set_parameters_callback(make_validator(schema))
    for p in schema:
        desc = ParameterDescriptor(
            name=p.name,
            description=p.description,
            read_only=p.read_only,
            additional_constraints=_constraints(p),
        )
        if isinstance(p.default, float) and (p.min_value is not None or p.max_value is not None):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(-1e308 if p.min_value is None else p.min_value),
                to_value=float(1e308 if p.max_value is None else p.max_value),
                step=0.0)]
        elif (isinstance(p.default, int) and not isinstance(p.default, bool)
              and (p.min_value is not None or p.max_value is not None)):
            desc.integer_range = [IntegerRange(
                from_value=int(-(2 ** 62) if p.min_value is None else p.min_value),
                to_value=int(2 ** 62 if p.max_value is None else p.max_value),
                step=1)]
        node.declare_parameter(p.name, _copy(p.default), desc)


def _constraints(p: Param) -> str:
    text = p.constraint_text()
    return f'{text}; applies {p.applies}' if text else f'applies {p.applies}'


def values(node, schema: Sequence[Param]) -> dict[str, Any]:
    """Read every schema parameter from ``node`` as ``{field: value}``."""
    out = {}
    for p in schema:
        value = node.get_parameter(p.name).value
        if isinstance(p.default, float) and isinstance(value, int):
            value = float(value)
        out[p.field] = _copy(value) if isinstance(value, (list, tuple)) else value
    return out
