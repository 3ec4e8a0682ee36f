#!/usr/bin/python3
# hush internal/omemotest: a python-omemo device driven over JSON lines.
#
# This program is a test oracle. It runs ONE OMEMO device of the reference
# implementation (python-omemo 1.0.2 with the twomemo 1.0.3 backend for
# urn:xmpp:omemo:2 and the oldmemo 1.0.3 backend for
# eu.siacs.conversations.axolotl) and has no network at all: the "PEP
# service" is a local view that the Go side fills (add_device_list,
# add_bundle), and everything python-omemo publishes or sends is queued for
# the Go side to drain (published, outbox).
#
# Protocol: one JSON object per line on stdin, one JSON object per line on
# stdout, strictly in order. Every request may carry "id", echoed in the
# reply. A failed command replies {"id": ..., "error": "...",
# "error_type": "PythonExceptionName"}. The first line written is a hello:
# {"ready": true, "versions": {...}, "pid": N} or, when a module is missing,
# {"fatal": true, "error": "..."}. Diagnostics go to stderr only. Binary
# values are standard base64 (with padding); XML is a UTF-8 string holding
# the bare PEP item payload / <encrypted/> element with a default namespace.
# Every reply also carries "pending_published": the number of publications
# not yet drained.
#
# Commands (arguments -> reply fields; b64 = base64 bytes, ns = namespace):
#   ping                         -> pong
#   init      jid, [device_id], [storage_path], [identity_seed b64 | ik_sign_bit 0/1],
#             [namespaces], [trust blind|manual], [label], [history_sync]
#                                -> jid, device_id, identity_key b64 (Ed25519), fingerprint, namespaces
#   info                         -> as init
#   own_bundle                   -> device_id, bundles {ns: xml}
#   own_device_list              -> lists {ns: xml}
#   add_device_list ns, jid, xml -> device_ids   (allowed before init: view only)
#   add_bundle ns, jid, device_id, xml -> identity_key b64   (allowed before init)
#   remove_bundle ns, jid, device_id   -> removed
#   parse     kind bundle|device_list, ns, xml -> the parsed fields
#   published                    -> items [{kind bundle|device_list|bundle_delete, namespace, jid, device_id, xml}]
#   outbox                       -> messages [{namespace, to, sid, empty, xml, recipients}]
#   encrypt   to [jid], plaintext b64, [plaintexts {ns: b64}], [namespaces priority]
#                                -> messages {ns: xml}, recipients {ns: [{jid, device_id, kex}]},
#                                   errors [{namespace, jid, device_id, error}]
#   decrypt   from, xml, [namespace] -> namespace, plaintext b64|null, empty, sender_device_id,
#             sender_identity_key, key_exchange, session_existed, session_built, trust, auto_messages
#   encrypt_batch to, namespace, plaintext, n -> xmls, seconds
#   decrypt_batch from, xmls     -> n, empty, auto_messages, seconds
#   session   namespace, jid, device_id -> exists, initiation, confirmed, sending/receiving_chain_length
#   devices   jid                -> devices [{device_id, namespaces, active, identity_key, trust, label}]
#   set_trust jid, level, identity_key b64 | device_id -> {}
#   replace_sessions jid, device_id -> failed {ns: error}
#   rotate_signed_pre_key        -> {}
#   history_sync active          -> {}
#   shutdown                     -> bye, then exit
#
# Written for hush; it only calls the public API of the installed packages
# (plus its documented storage keys /ikp/is_seed and /ikp/key, to choose the
# identity, and the module's secrets reference, to choose the device id).

import asyncio
import base64
import binascii
import json
import logging
import os
import secrets
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

# The protocol owns the real stdout; anything printed by a library goes to
# stderr instead, so it can never corrupt the reply stream.
PROTO_OUT = sys.stdout
sys.stdout = sys.stderr


def emit(obj):
    PROTO_OUT.write(json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n")
    PROTO_OUT.flush()


try:
    import omemo
    import omemo.session_manager as omemo_session_manager
    from omemo.session import Initiation
    import twomemo
    import twomemo.etree
    import oldmemo
    import oldmemo.etree
    import xmlschema
    import xeddsa
except ImportError as import_error:  # pragma: no cover - reported to Go
    emit({
        "fatal": True,
        "error": f"python module missing: {import_error} (install python3-omemo python3-twomemo "
                 f"python3-oldmemo python3-xmlschema; run with /usr/bin/python3)",
    })
    sys.exit(3)

NS2 = twomemo.twomemo.NAMESPACE
NS1 = oldmemo.oldmemo.NAMESPACE
ETREES = {NS2: twomemo.etree, NS1: oldmemo.etree}
# Local names of the PEP payloads per namespace.
DEVICE_LIST_TAG = {NS2: "devices", NS1: "list"}
BUNDLE_TAG = {NS2: "bundle", NS1: "bundle"}

# Longest request line accepted (batches of messages can be large).
MAX_LINE = 256 << 20

UNDECIDED = "undecided"
TRUST_LEVELS = {"trusted", "distrusted", UNDECIDED}

log = logging.getLogger("omemotest")


class DriverError(Exception):
    """A bad request; reported to Go as error_type DriverError."""


def b64e(data):
    return base64.b64encode(data).decode("ascii")


def b64d(text, what):
    if not isinstance(text, str):
        raise DriverError(f"{what}: want a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise DriverError(f"{what}: bad base64: {e}") from e


def xml_string(element):
    # One namespace per payload: serialize it as the default namespace so the
    # XML reads like a PEP item payload (<bundle xmlns='...'>), not ns0:bundle.
    # (ElementTree's default_namespace option rejects unqualified attributes.)
    ns = element.tag[1:].split("}", 1)[0]
    prefix = f"{{{ns}}}"

    def strip(src):
        if not src.tag.startswith(prefix):
            raise DriverError(f"unexpected element {src.tag} in a {ns} payload")
        dst = ET.Element(src.tag[len(prefix):], dict(src.attrib))
        dst.text = src.text
        dst.tail = src.tail
        dst.extend(strip(child) for child in src)
        return dst

    root = strip(element)
    root.set("xmlns", ns)
    return ET.tostring(root, encoding="unicode")


def parse_xml(text, what):
    if not isinstance(text, str):
        raise DriverError(f"{what}: want an XML string")
    try:
        return ET.fromstring(text)
    except ET.ParseError as e:
        raise DriverError(f"{what}: malformed XML: {e}") from e


def find_element(root, ns, local, what):
    """Find {ns}local at or below root, so callers may pass a whole <item/> or <message/>."""
    tag = f"{{{ns}}}{local}"
    if root.tag == tag:
        return root
    found = root.find(f".//{tag}")
    if found is None:
        raise DriverError(f"{what}: no <{local} xmlns='{ns}'/> element")
    return found


def want_ns(ns):
    if ns not in ETREES:
        raise DriverError(f"unknown namespace {ns!r} (want {NS2!r} or {NS1!r})")
    return ns


def want_int(value, what, lo=1, hi=2 ** 31 - 1):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise DriverError(f"{what}: want an integer in {lo}..{hi}, got {value!r}")
    return value


def want_str(value, what):
    if not isinstance(value, str) or value == "":
        raise DriverError(f"{what}: want a non-empty string")
    return value


def parse_device_list(ns, element):
    # Both schemas demand at least one <device/>; XEP-0384 0.9 allows an empty
    # list, so an empty payload is accepted here as "no devices".
    if len(element) == 0 and (element.text is None or element.text.strip() == ""):
        return {}
    return ETREES[ns].parse_device_list(element)


# ---------------------------------------------------------------------------
# Storage: a dict of JSON values, optionally persisted to a JSON file after
# every write, so a peer can be stopped and started again with its state.


class JSONStorage(omemo.Storage):
    def __init__(self, path):
        super().__init__(disable_cache=True)
        self.path = path
        self.data = {}
        if path and os.path.exists(path):
            with open(path, "r", encoding="utf-8") as f:
                self.data = json.load(f)
            log.info("storage loaded from %s (%d keys)", path, len(self.data))

    def has(self, key):
        return key in self.data

    def _persist(self):
        if not self.path:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".omemotest-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    async def _load(self, key):
        if key in self.data:
            return omemo.Just(self.data[key])
        return omemo.Nothing()

    async def _store(self, key, value):
        self.data[key] = value
        self._persist()

    async def _delete(self, key):
        if self.data.pop(key, None) is not None:
            self._persist()


# ---------------------------------------------------------------------------
# The local view of PEP and the queues Go drains.


class View:
    def __init__(self):
        self.own_jid = None
        self.device_lists = {NS2: {}, NS1: {}}  # ns -> jid -> {device_id: label}
        self.bundles = {NS2: {}, NS1: {}}  # ns -> (jid, device_id) -> BundleImpl
        self.published = []  # what python-omemo published, in order
        self.outbox = []  # what python-omemo sent by itself (_send_message)
        self.trust_mode = "blind"


VIEW = View()


class PeerSessionManager(omemo.SessionManager):
    # python-omemo calls these as self._x(...) (create() instantiates cls()
    # without arguments), so they read the module-level VIEW.

    async def _upload_bundle(self, bundle):
        ns = want_ns(bundle.namespace)
        xml = xml_string(ETREES[ns].serialize_bundle(bundle))
        # Keep what a PEP service would hand out: the parsed published XML.
        VIEW.bundles[ns][(bundle.bare_jid, bundle.device_id)] = ETREES[ns].parse_bundle(
            ET.fromstring(xml), bundle.bare_jid, bundle.device_id
        )
        VIEW.published.append({
            "kind": "bundle", "namespace": ns, "jid": bundle.bare_jid,
            "device_id": bundle.device_id, "xml": xml,
        })
        log.info("published bundle ns=%s device=%d", ns, bundle.device_id)

    async def _download_bundle(self, namespace, bare_jid, device_id):
        if namespace not in ETREES:
            raise omemo.UnknownNamespace(namespace)
        bundle = VIEW.bundles[namespace].get((bare_jid, device_id))
        if bundle is None:
            log.info("bundle not found ns=%s jid=%s device=%d", namespace, bare_jid, device_id)
            raise omemo.BundleNotFound(f"no bundle for {bare_jid}/{device_id} in {namespace}")
        return bundle

    async def _delete_bundle(self, namespace, device_id):
        if namespace not in ETREES:
            raise omemo.UnknownNamespace(namespace)
        VIEW.bundles[namespace].pop((VIEW.own_jid, device_id), None)
        VIEW.published.append({
            "kind": "bundle_delete", "namespace": namespace, "jid": VIEW.own_jid,
            "device_id": device_id, "xml": "",
        })
        log.info("deleted bundle ns=%s device=%d", namespace, device_id)

    async def _upload_device_list(self, namespace, device_list):
        if namespace not in ETREES:
            raise omemo.UnknownNamespace(namespace)
        VIEW.device_lists[namespace][VIEW.own_jid] = dict(device_list)
        xml = xml_string(ETREES[namespace].serialize_device_list(device_list))
        VIEW.published.append({
            "kind": "device_list", "namespace": namespace, "jid": VIEW.own_jid,
            "device_id": 0, "xml": xml,
        })
        log.info("published device list ns=%s ids=%s", namespace, sorted(device_list))

    async def _download_device_list(self, namespace, bare_jid):
        if namespace not in ETREES:
            raise omemo.UnknownNamespace(namespace)
        return dict(VIEW.device_lists[namespace].get(bare_jid, {}))

    async def _evaluate_custom_trust_level(self, device):
        name = device.trust_level_name
        if name == "trusted":
            return omemo.TrustLevel.TRUSTED
        if name == "distrusted":
            return omemo.TrustLevel.DISTRUSTED
        if name == UNDECIDED:
            return omemo.TrustLevel.TRUSTED if VIEW.trust_mode == "blind" else omemo.TrustLevel.UNDECIDED
        raise omemo.UnknownTrustLevel(name)

    async def _make_trust_decision(self, undecided, identifier):
        # Manual trust: decisions come only from set_trust; leaving devices
        # undecided makes encrypt fail with StillUndecided.
        log.info("trust decision requested for %s; leaving undecided",
                 sorted((d.bare_jid, d.device_id) for d in undecided))

    async def _send_message(self, message, bare_jid):
        ns = want_ns(message.namespace)
        element = ETREES[ns].serialize_message(message)
        VIEW.outbox.append({
            "namespace": ns, "to": bare_jid, "sid": message.device_id,
            "empty": bool(message.content.empty), "xml": xml_string(element),
            "recipients": recipients(message),
        })
        log.info("queued automatic message ns=%s to=%s empty=%s", ns, bare_jid, message.content.empty)


def recipients(message):
    return sorted(
        ({"jid": k.bare_jid, "device_id": k.device_id, "kex": kex is not None} for k, kex in message.keys),
        key=lambda r: (r["jid"], r["device_id"]),
    )


# ---------------------------------------------------------------------------
# The driver.


class FixedDeviceID:
    """Stands in for the secrets module during create() to choose the device id."""

    def __init__(self, device_id):
        self.device_id = device_id
        self.used = False

    def randbelow(self, _n):
        if self.used:
            raise DriverError(f"device id {self.device_id} is already on the own device list")
        self.used = True
        return self.device_id - omemo.SessionManager.DEVICE_ID_MIN


class Driver:
    def __init__(self):
        self.sm = None
        self.storage = None
        self.backends = {}
        self.namespaces = []
        self.device_id = None
        self.jid = None

    def need_init(self):
        if self.sm is None:
            raise DriverError("not initialised: send init first")

    def backend(self, ns):
        self.need_init()
        backend = self.backends.get(want_ns(ns))
        if backend is None:
            raise DriverError(f"backend {ns} not loaded")
        return backend

    # -- lifecycle ---------------------------------------------------------

    async def cmd_ping(self, req):
        return {"pong": True}

    async def cmd_init(self, req):
        if self.sm is not None:
            raise DriverError("already initialised")
        jid = want_str(req.get("jid"), "jid")
        if "/" in jid:
            raise DriverError("jid must be bare")
        namespaces = req.get("namespaces") or [NS2, NS1]
        for ns in namespaces:
            want_ns(ns)
        if len(set(namespaces)) != len(namespaces):
            raise DriverError("duplicate namespace")
        trust = req.get("trust", "blind")
        if trust not in ("blind", "manual"):
            raise DriverError("trust: want blind or manual")
        VIEW.trust_mode = trust
        VIEW.own_jid = jid

        storage = JSONStorage(req.get("storage_path") or None)
        fresh_identity = not storage.has("/ikp/key")
        if "identity_seed" in req and req["identity_seed"] is not None:
            seed = b64d(req["identity_seed"], "identity_seed")
            if len(seed) != 32:
                raise DriverError("identity_seed: want 32 bytes")
            if fresh_identity:
                await storage.store("/ikp/is_seed", True)
                await storage.store_bytes("/ikp/key", seed)
        elif req.get("ik_sign_bit") is not None:
            bit = req["ik_sign_bit"]
            if bit not in (0, 1):
                raise DriverError("ik_sign_bit: want 0 or 1")
            if fresh_identity:
                while True:
                    seed = secrets.token_bytes(32)
                    if xeddsa.seed_to_ed25519_pub(seed)[31] >> 7 == bit:
                        break
                await storage.store("/ikp/is_seed", True)
                await storage.store_bytes("/ikp/key", seed)

        backends = []
        for ns in namespaces:
            backend = twomemo.Twomemo(storage) if ns == NS2 else oldmemo.Oldmemo(storage)
            backends.append(backend)
            self.backends[ns] = backend

        wanted = req.get("device_id")
        patched = None
        if wanted is not None:
            want_int(wanted, "device_id")
            if storage.has("/own_device_id"):
                if storage.data["/own_device_id"] != wanted:
                    raise DriverError(
                        f"device_id {wanted} conflicts with stored id {storage.data['/own_device_id']}")
            else:
                for ns in namespaces:
                    if wanted in VIEW.device_lists[ns].get(jid, {}):
                        raise DriverError(f"device_id {wanted} already on the {ns} device list of {jid}")
                patched = omemo_session_manager.secrets
                omemo_session_manager.secrets = FixedDeviceID(wanted)
        try:
            self.sm = await PeerSessionManager.create(
                backends,
                storage,
                jid,
                req.get("label"),
                UNDECIDED,
                signed_pre_key_rotation_period=7 * 24 * 60 * 60,
                # Keep 99: SessionManager.decrypt only binds the bundle it
                # re-uploads after a key exchange when the visible pre keys
                # fall to the threshold, so with a lower threshold the first
                # KEX fails with UnboundLocalError (python-omemo 1.0.2).
                pre_key_refill_threshold=99,
                async_framework=omemo.AsyncFramework.ASYNCIO,
            )
        finally:
            if patched is not None:
                omemo_session_manager.secrets = patched
        self.storage = storage
        self.namespaces = namespaces
        self.jid = jid
        own, _ = await self.sm.get_own_device_information()
        self.device_id = own.device_id
        # Device lists delivered before init were only stored in the view:
        # feed them to python-omemo now, as the PEP notifications a client
        # receives right after connecting.
        for ns in namespaces:
            for list_jid, device_list in sorted(VIEW.device_lists[ns].items()):
                await self.sm.update_device_list(ns, list_jid, dict(device_list))
        if not req.get("history_sync", False):
            await self.sm.after_history_sync()
        log.info("initialised jid=%s device=%d namespaces=%s trust=%s", jid, self.device_id, namespaces, trust)
        return await self.cmd_info(req)

    async def cmd_info(self, req):
        self.need_init()
        own, _ = await self.sm.get_own_device_information()
        return {
            "jid": self.jid,
            "device_id": self.device_id,
            "identity_key": b64e(own.identity_key),
            "fingerprint": "".join(self.sm.format_identity_key(own.identity_key)),
            "namespaces": self.namespaces,
        }

    # -- PEP ---------------------------------------------------------------

    async def cmd_own_bundle(self, req):
        self.need_init()
        out = {}
        for ns, backend in self.backends.items():
            bundle = await backend.get_bundle(self.jid, self.device_id)
            out[ns] = xml_string(ETREES[ns].serialize_bundle(bundle))
        return {"device_id": self.device_id, "bundles": out}

    async def cmd_own_device_list(self, req):
        self.need_init()
        out = {}
        for ns in self.namespaces:
            device_list = VIEW.device_lists[ns].get(self.jid)
            if device_list is None:
                device_list = await self.sm._download_device_list(ns, self.jid)
            out[ns] = xml_string(ETREES[ns].serialize_device_list(device_list))
        return {"lists": out}

    async def cmd_add_device_list(self, req):
        ns = want_ns(req.get("namespace"))
        jid = want_str(req.get("jid"), "jid")
        root = parse_xml(req.get("xml"), "xml")
        element = find_element(root, ns, DEVICE_LIST_TAG[ns], "device list")
        device_list = parse_device_list(ns, element)
        VIEW.device_lists[ns][jid] = dict(device_list)
        if self.sm is not None and ns in self.backends:
            await self.sm.update_device_list(ns, jid, device_list)
        log.info("device list ns=%s jid=%s ids=%s", ns, jid, sorted(device_list))
        return {"device_ids": sorted(device_list)}

    async def cmd_add_bundle(self, req):
        ns = want_ns(req.get("namespace"))
        jid = want_str(req.get("jid"), "jid")
        device_id = want_int(req.get("device_id"), "device_id")
        root = parse_xml(req.get("xml"), "xml")
        element = find_element(root, ns, BUNDLE_TAG[ns], "bundle")
        bundle = ETREES[ns].parse_bundle(element, jid, device_id)
        VIEW.bundles[ns][(jid, device_id)] = bundle
        log.info("bundle ns=%s jid=%s device=%d prekeys=%d", ns, jid, device_id, len(bundle.pre_key_ids))
        return {"identity_key": b64e(bundle.identity_key)}

    async def cmd_remove_bundle(self, req):
        ns = want_ns(req.get("namespace"))
        jid = want_str(req.get("jid"), "jid")
        device_id = want_int(req.get("device_id"), "device_id")
        removed = VIEW.bundles[ns].pop((jid, device_id), None) is not None
        return {"removed": removed}

    async def cmd_parse(self, req):
        ns = want_ns(req.get("namespace"))
        kind = req.get("kind")
        root = parse_xml(req.get("xml"), "xml")
        if kind == "device_list":
            device_list = parse_device_list(ns, find_element(root, ns, DEVICE_LIST_TAG[ns], "device list"))
            return {"devices": [{"id": i, "label": device_list[i]} for i in sorted(device_list)]}
        if kind == "bundle":
            bundle = ETREES[ns].parse_bundle(find_element(root, ns, BUNDLE_TAG[ns], "bundle"), "x@y", 1)
            inner = bundle.bundle
            return {
                "identity_key": b64e(inner.identity_key),
                "signed_pre_key": b64e(inner.signed_pre_key),
                "signed_pre_key_id": bundle.signed_pre_key_id,
                "signed_pre_key_sig": b64e(inner.signed_pre_key_sig),
                "pre_keys": sorted(
                    ({"id": i, "key": b64e(k)} for k, i in bundle.pre_key_ids.items()),
                    key=lambda p: p["id"],
                ),
            }
        raise DriverError("kind: want bundle or device_list")

    async def cmd_published(self, req):
        items, VIEW.published = VIEW.published, []
        return {"items": items}

    async def cmd_outbox(self, req):
        messages, VIEW.outbox = VIEW.outbox, []
        return {"messages": messages}

    # -- messages ----------------------------------------------------------

    def plaintexts(self, req):
        plaintext = b64d(req.get("plaintext", ""), "plaintext")
        out = {ns: plaintext for ns in self.namespaces}
        for ns, value in (req.get("plaintexts") or {}).items():
            if ns not in self.backends:
                raise DriverError(f"plaintexts: backend {ns} not loaded")
            out[ns] = b64d(value, f"plaintexts[{ns}]")
        return out

    def priority(self, req):
        order = req.get("namespaces") or None
        if order is not None:
            for ns in order:
                self.backend(ns)
        return order

    async def cmd_encrypt(self, req):
        self.need_init()
        to = req.get("to") or []
        for jid in to:
            want_str(jid, "to")
        messages, errors = await self.sm.encrypt(frozenset(to), self.plaintexts(req), self.priority(req))
        out, rcpt = {}, {}
        for message in messages:
            out[message.namespace] = xml_string(ETREES[message.namespace].serialize_message(message))
            rcpt[message.namespace] = recipients(message)
        errs = sorted(
            ({"namespace": e.namespace, "jid": e.bare_jid, "device_id": e.device_id,
              "error": f"{type(e.exception).__name__}: {e.exception}"} for e in errors),
            key=lambda e: (e["namespace"], e["jid"], e["device_id"]),
        )
        log.info("encrypted to=%s namespaces=%s recipients=%s errors=%d",
                 sorted(to), sorted(out), {ns: len(r) for ns, r in rcpt.items()}, len(errs))
        return {"messages": out, "recipients": rcpt, "errors": errs}

    async def parse_message(self, xml, sender, ns=None):
        root = parse_xml(xml, "xml")
        if ns is None:
            for candidate in (NS2, NS1):
                tag = f"{{{candidate}}}encrypted"
                if root.tag == tag or root.find(f".//{tag}") is not None:
                    ns = candidate
                    break
            else:
                raise DriverError("no <encrypted/> element of a known namespace")
        backend = self.backend(ns)
        element = find_element(root, ns, "encrypted", "message")
        if ns == NS2:
            message = twomemo.etree.parse_message(element, sender)
        else:
            message = await oldmemo.etree.parse_message(element, sender, self.jid, self.sm)
        return backend, message

    async def decrypt_one(self, xml, sender, ns=None):
        backend, message = await self.parse_message(xml, sender, ns)
        entry = next((e for e in message.keys
                      if e[0].bare_jid == self.jid and e[0].device_id == self.device_id), None)
        ours = None if entry is None else entry[1]
        key_exchange = ours is not None
        before = await backend.load_session(sender, message.device_id)
        outbox_before = len(VIEW.outbox)
        plaintext, device, _ = await self.sm.decrypt(message)
        built = key_exchange and not (
            before is not None
            and before.initiation is Initiation.PASSIVE
            and before.key_exchange.builds_same_session(ours)
        )
        return {
            "namespace": message.namespace,
            "plaintext": None if plaintext is None else b64e(plaintext),
            "empty": plaintext is None,
            "sender_device_id": device.device_id,
            "sender_identity_key": b64e(device.identity_key),
            "key_exchange": key_exchange,
            "session_existed": before is not None,
            "session_built": built,
            "trust": device.trust_level_name,
            "auto_messages": len(VIEW.outbox) - outbox_before,
        }

    async def cmd_decrypt(self, req):
        self.need_init()
        sender = want_str(req.get("from"), "from")
        ns = req.get("namespace") or None
        if ns is not None:
            want_ns(ns)
        reply = await self.decrypt_one(req.get("xml"), sender, ns)
        log.info("decrypted from=%s/%d ns=%s empty=%s kex=%s built=%s auto=%d", sender,
                 reply["sender_device_id"], reply["namespace"], reply["empty"], reply["key_exchange"],
                 reply["session_built"], reply["auto_messages"])
        return reply

    async def cmd_encrypt_batch(self, req):
        self.need_init()
        ns = want_ns(req.get("namespace"))
        self.backend(ns)
        n = want_int(req.get("n"), "n", 1, 100000)
        to = frozenset(want_str(j, "to") for j in (req.get("to") or []))
        plaintext = {x: b64d(req.get("plaintext", ""), "plaintext") for x in self.namespaces}
        xmls = []
        start = time.perf_counter()
        for _ in range(n):
            messages, errors = await self.sm.encrypt(to, plaintext, [ns])
            if errors:
                raise DriverError(f"encrypt_batch: {len(errors)} encryption errors")
            message = next(m for m in messages if m.namespace == ns)
            xmls.append(xml_string(ETREES[ns].serialize_message(message)))
        seconds = time.perf_counter() - start
        log.info("encrypt_batch n=%d ns=%s %.3fs", n, ns, seconds)
        return {"xmls": xmls, "seconds": seconds}

    async def cmd_decrypt_batch(self, req):
        self.need_init()
        sender = want_str(req.get("from"), "from")
        xmls = req.get("xmls") or []
        outbox_before = len(VIEW.outbox)
        empty = 0
        start = time.perf_counter()
        for i, xml in enumerate(xmls):
            try:
                _, message = await self.parse_message(xml, sender)
                plaintext, _, _ = await self.sm.decrypt(message)
            except Exception as e:
                raise DriverError(f"decrypt_batch: message {i}: {type(e).__name__}: {e}") from e
            if plaintext is None:
                empty += 1
        seconds = time.perf_counter() - start
        log.info("decrypt_batch n=%d %.3fs", len(xmls), seconds)
        return {"n": len(xmls), "empty": empty, "seconds": seconds,
                "auto_messages": len(VIEW.outbox) - outbox_before}

    # -- sessions, devices, trust -----------------------------------------

    async def cmd_session(self, req):
        backend = self.backend(req.get("namespace"))
        jid = want_str(req.get("jid"), "jid")
        device_id = want_int(req.get("device_id"), "device_id")
        session = await backend.load_session(jid, device_id)
        if session is None:
            return {"exists": False}
        return {
            "exists": True,
            "initiation": "active" if session.initiation is Initiation.ACTIVE else "passive",
            "confirmed": bool(session.confirmed),
            "sending_chain_length": session.sending_chain_length,
            "receiving_chain_length": session.receiving_chain_length,
        }

    async def cmd_devices(self, req):
        self.need_init()
        jid = want_str(req.get("jid"), "jid")
        devices = await self.sm.get_device_information(jid)
        return {"devices": sorted(({
            "device_id": d.device_id,
            "namespaces": sorted(d.namespaces),
            "active": {ns: a for ns, a in d.active},
            "identity_key": b64e(d.identity_key),
            "trust": d.trust_level_name,
            "label": d.label,
        } for d in devices), key=lambda d: d["device_id"])}

    async def find_device(self, jid, device_id):
        devices = await self.sm.get_device_information(jid)
        device = next((d for d in devices if d.device_id == device_id), None)
        if device is None:
            raise DriverError(f"unknown device {jid}/{device_id}")
        return device

    async def cmd_set_trust(self, req):
        self.need_init()
        jid = want_str(req.get("jid"), "jid")
        level = req.get("level")
        if level not in TRUST_LEVELS:
            raise DriverError(f"level: want one of {sorted(TRUST_LEVELS)}")
        if req.get("identity_key"):
            identity_key = b64d(req["identity_key"], "identity_key")
        else:
            identity_key = (await self.find_device(jid, want_int(req.get("device_id"), "device_id"))).identity_key
        await self.sm.set_trust(jid, identity_key, level)
        return {}

    async def cmd_replace_sessions(self, req):
        self.need_init()
        device = await self.find_device(want_str(req.get("jid"), "jid"),
                                        want_int(req.get("device_id"), "device_id"))
        failed = await self.sm.replace_sessions(device)
        return {"failed": {ns: f"{type(e).__name__}: {e}" for ns, e in failed.items()}}

    async def cmd_rotate_signed_pre_key(self, req):
        self.need_init()
        for backend in self.backends.values():
            await backend.rotate_signed_pre_key()
            await self.sm._upload_bundle(await backend.get_bundle(self.jid, self.device_id))
        return {}

    async def cmd_history_sync(self, req):
        self.need_init()
        if req.get("active"):
            self.sm.before_history_sync()
        else:
            await self.sm.after_history_sync()
        return {}

    async def cmd_shutdown(self, req):
        return {"bye": True}


async def serve():
    driver = Driver()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"ready": True, "pid": os.getpid(), "versions": {
        "python": sys.version.split()[0],
        "omemo": omemo.__version__["short"],
        "twomemo": twomemo.__version__["short"],
        "oldmemo": oldmemo.__version__["short"],
        "xmlschema": xmlschema.__version__,
    }})
    while True:
        try:
            line = await reader.readline()
        except (ValueError, asyncio.LimitOverrunError) as e:
            emit({"error": f"request line too long: {e}", "error_type": "DriverError"})
            return
        if not line:
            log.info("stdin closed; exiting")
            return
        if not line.strip():
            continue
        rid = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise DriverError("request must be a JSON object")
            rid = req.get("id")
            cmd = req.get("cmd")
            handler = getattr(driver, f"cmd_{cmd}", None) if isinstance(cmd, str) else None
            if handler is None:
                raise DriverError(f"unknown command {cmd!r}")
            reply = await handler(req)
        except Exception as e:  # every failure becomes a reply; the driver keeps running
            if not isinstance(e, DriverError):
                log.warning("command failed:\n%s", traceback.format_exc().rstrip())
            reply = {"error": f"{type(e).__name__}: {e}", "error_type": type(e).__name__}
            cmd = None
        reply["id"] = rid
        # Lets the Go side drain publications only when there are some.
        reply["pending_published"] = len(VIEW.published)
        emit(reply)
        if cmd == "shutdown":
            return


def main():
    level = os.environ.get("OMEMOTEST_LOG", "INFO").upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if level == "DEBUG" else logging.INFO,
        format="%(relativeCreated)9.1fms %(levelname).1s %(name)s: %(message)s",
    )
    if level != "DEBUG":
        # python-omemo's INFO level is chatty but useful; its DEBUG level
        # dumps keys and plaintexts and is only enabled on request.
        logging.getLogger("omemo").setLevel(logging.INFO)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
