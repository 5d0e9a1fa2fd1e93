"""The model variants' functions under their former module; the variants themselves are catalogued in
:mod:`ila.catalog` (this module stays for the callers that import these names from here: ``ila.cli``)."""

from ila.catalog import describe_variant, list_variants, register_variant, variant_defaults

__all__ = ["describe_variant", "list_variants", "register_variant", "variant_defaults"]
