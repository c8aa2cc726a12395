#!/usr/bin/env python3
"""Vendor authentik's request schemas as standalone JSON Schemas.

Reads authentik's OpenAPI 3.0 document, takes the request components the
authentik stand-in validates request bodies against, and writes them as
self-contained JSON Schema (draft 2020-12) documents:

- every `$ref` is resolved inline,
- `nullable: true` becomes a type union with "null" (and null is added to the
  allowed values of enums, including enums reached through a `$ref`),
- an `allOf` with a single member (drf-spectacular's way of attaching a
  description to a `$ref`) is merged into its parent,
- `readOnly` properties are removed (they never belong in a request), the
  `readOnly`/`writeOnly` keywords and other OpenAPI-only keywords are dropped,
- objects with properties and no explicit `additionalProperties` get
  `additionalProperties: false`, so unknown fields are rejected.

Usage: vendor.py [SCHEMA_YML] [--out FILE]
Default input: ../shared/authentik/schema.yml relative to the repository root.
Default output: request-schemas.json beside this script.
The output is deterministic (sorted keys), so it can be compared byte for byte.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

COMPONENTS = [
    "ApplicationRequest",
    "PatchedApplicationRequest",
    "OAuth2ProviderRequest",
    "PatchedOAuth2ProviderRequest",
    "ScopeMappingRequest",
    "PatchedScopeMappingRequest",
    "OutpostRequest",
    "PatchedOutpostRequest",
    "SAMLProviderRequest",
    "PatchedSAMLProviderRequest",
    "ProxyProviderRequest",
    "PatchedProxyProviderRequest",
    "SAMLPropertyMappingRequest",
    "PatchedSAMLPropertyMappingRequest",
    "CertificateKeyPairRequest",
    # pma-sso's own identity (`pma-sso init`)
    "UserServiceAccountRequest",
    "TokenRequest",
    "PatchedTokenRequest",
    "GroupRequest",
    "PatchedGroupRequest",
    "UserAccountRequest",
    # the notification pipeline (`pma-sso webhook install`)
    "NotificationWebhookMappingRequest",
    "PatchedNotificationWebhookMappingRequest",
    "NotificationTransportRequest",
    "PatchedNotificationTransportRequest",
    "EventMatcherPolicyRequest",
    "PatchedEventMatcherPolicyRequest",
    "NotificationRuleRequest",
    "PatchedNotificationRuleRequest",
    "PolicyBindingRequest",
    "PatchedPolicyBindingRequest",
]

# OpenAPI keywords with no JSON Schema meaning (or none we want to assert).
DROP = {"readOnly", "writeOnly", "nullable", "example", "externalDocs", "xml", "discriminator", "deprecated"}

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent


class Converter:
    def __init__(self, components):
        self.components = components

    def component(self, ref, stack):
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            raise ValueError(f"unsupported $ref {ref}")
        name = ref[len(prefix):]
        if name in stack:
            raise ValueError(f"recursive $ref {' -> '.join(stack + [name])}")
        return self.convert(self.components[name], stack + [name])

    def convert(self, node, stack):
        if isinstance(node, list):
            return [self.convert(item, stack) for item in node]
        if not isinstance(node, dict):
            return node

        node = dict(node)
        nullable = node.get("nullable") is True

        # `$ref` siblings are ignored in OpenAPI 3.0, except that drf-spectacular
        # puts `nullable` there; resolve and keep that.
        if "$ref" in node:
            out = self.component(node["$ref"], stack)
        else:
            out = {}
            if "allOf" in node and len(node["allOf"]) == 1:
                merged = self.convert(node["allOf"][0], stack)
                rest = {k: v for k, v in node.items() if k != "allOf"}
                node = {**merged, **rest}
            for key, value in node.items():
                if key in DROP:
                    continue
                if key == "properties":
                    out[key] = {
                        name: self.convert(prop, stack)
                        for name, prop in value.items()
                        if not (isinstance(prop, dict) and prop.get("readOnly") is True)
                    }
                elif key == "required":
                    read_only = {
                        name
                        for name, prop in node.get("properties", {}).items()
                        if isinstance(prop, dict) and prop.get("readOnly") is True
                    }
                    required = [name for name in value if name not in read_only]
                    if required:
                        out[key] = required
                elif key in ("items", "additionalProperties", "not"):
                    out[key] = self.convert(value, stack)
                elif key in ("allOf", "anyOf", "oneOf"):
                    out[key] = [self.convert(item, stack) for item in value]
                elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                    # OpenAPI 3.0 / draft 4 boolean form: turn the bound exclusive.
                    bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                    if value and bound in node:
                        out[key] = node[bound]
                elif key in ("minimum", "maximum") and node.get("exclusive" + key.capitalize()) is True:
                    continue
                else:
                    out[key] = value
            if "properties" in out and "additionalProperties" not in out:
                out["additionalProperties"] = False

        if nullable:
            out = make_nullable(out)
        return out


def make_nullable(schema):
    schema = dict(schema)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "null" not in types:
            types = types + ["null"]
        schema["type"] = types
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = schema["enum"] + [None]
    if "type" not in schema and "enum" not in schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "schema",
        nargs="?",
        default=str(REPO_ROOT.parent / "shared" / "authentik" / "schema.yml"),
        help="authentik OpenAPI schema.yml",
    )
    parser.add_argument("--out", default=str(SCRIPT_DIR / "request-schemas.json"))
    args = parser.parse_args()

    schema_path = Path(args.schema)
    with schema_path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    version_file = schema_path.parent / "VERSION.txt"
    version_txt = version_file.read_text(encoding="utf-8").strip() if version_file.exists() else None

    components = document["components"]["schemas"]
    converter = Converter(components)
    out = {
        "source": {
            "openapi_info_version": document["info"]["version"],
            "version_txt": version_txt,
            "generated_by": "testkit/authentik-schema/vendor.py",
        },
        "components": {},
    }
    for name in COMPONENTS:
        converted = converter.convert(components[name], [name])
        converted["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        converted["title"] = name
        out["components"][name] = converted

    text = json.dumps(out, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
