#!/usr/bin/python3
# hush internal/omemotest: a python-omemo OMEMO 2 device on a real XMPP
# connection (slixmpp), driven over JSON lines.
#
# This program is a test oracle. It runs ONE OMEMO 2 device of the reference
# implementation (python-omemo 1.0.2 with the twomemo 1.0.3 backend,
# urn:xmpp:omemo:2, XEP-0384 0.9) as an XMPP client on slixmpp 1.8. Unlike
# peer.py (which has no network), the PEP side is real: python-omemo's
# abstract I/O methods are implemented here with XEP-0060 IQs against the
# account's PEP service (XEP-0163), and messages travel as stanzas. The SCE
# envelope (XEP-0420 0.5, urn:xmpp:sce:1) around the body is built and
# checked here, since python-omemo only encrypts bytes.
#
# Wire choices (XEP-0384 0.9 §5.3, DESIGN.md):
#   device list: node urn:xmpp:omemo:2:devices, item id "current",
#                publish-options pubsub#access_model=open
#   bundles:     node urn:xmpp:omemo:2:bundles, item id = device id,
#                publish-options pubsub#access_model=open, pubsub#max_items=max
#   messages:    <message type='chat'> with <encrypted xmlns='urn:xmpp:omemo:2'/>,
#                XEP-0380 <encryption namespace='urn:xmpp:omemo:2'/> and XEP-0334
#                <store/>; no fallback body (XEP-0420 0.5)
#   trust:       blind (every undecided device is trusted)
#   device list updates: +notify via entity capabilities (XEP-0115) and a
#                fresh download before every send
#
# Protocol: one JSON object per line on stdin and stdout. Requests carry
# "cmd" and optionally "id", echoed in the reply; a failed command replies
# {"id": ..., "error": "...", "error_type": "..."}. Asynchronous events are
# lines with "event" (never "id"), written whenever they happen:
#   {"event":"message","from":bare,"device":N,"text":body,"kex":bool,
#    "delayed":bool,"envelope":xml,"stanza":xml}  an OMEMO 2 message with a body
#   {"event":"empty","from":bare,"device":N,"kex":bool,"delayed":bool,"stanza":xml}
#                                             an empty OMEMO message
#   {"event":"auto","to":bare,"empty":bool}  python-omemo sent a message itself
#   {"event":"plaintext","from":...,"stanza":xml}  a message with a body and
#                                             no OMEMO 2 element (must not happen)
#   {"event":"error","from":...,"error":"...","stanza":xml}  a failed decryption
#   {"event":"disconnected"}
# The first line is a hello: {"ready": true, "versions": {...}} or, when a
# module is missing, {"fatal": true, "error": "..."}. Diagnostics go to stderr.
#
# Commands:
#   start  jid (bare), password, host, port, [device_id], [resource]
#          -> jid, full_jid, device_id, fingerprint (connects, publishes, sends presence)
#   send   to (bare), text -> recipients [{jid, device_id, kex}], errors, stanza
#   disconnect             -> {} (offline: the server keeps messages for later)
#   connect                -> {} (online again, initial presence sent)
#   shutdown               -> bye, then exit
#
# Written for hush; it only calls the public API of python-omemo, twomemo
# and slixmpp.

import asyncio
import base64
import datetime
import json
import logging
import os
import secrets
import sys
import traceback
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

PROTO_OUT = sys.stdout
sys.stdout = sys.stderr


def emit(obj):
    PROTO_OUT.write(json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n")
    PROTO_OUT.flush()


try:
    import omemo
    import twomemo
    import twomemo.etree
    import xmlschema
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout
    from slixmpp.xmlstream.handler import CoroutineCallback
    from slixmpp.xmlstream.matcher import MatchXPath
except ImportError as import_error:  # pragma: no cover - reported to Go
    emit({
        "fatal": True,
        "error": f"python module missing: {import_error} (install python3-omemo python3-twomemo "
                 f"python3-xmlschema python3-slixmpp; run with /usr/bin/python3)",
    })
    sys.exit(3)

NS2 = twomemo.twomemo.NAMESPACE
NODE_DEVICES = "urn:xmpp:omemo:2:devices"
NODE_BUNDLES = "urn:xmpp:omemo:2:bundles"
NS_SCE = "urn:xmpp:sce:1"
NS_CLIENT = "jabber:client"
NS_EME = "urn:xmpp:eme:0"
NS_HINTS = "urn:xmpp:hints"
NS_DELAY = "urn:xmpp:delay"
NS_DATA = "jabber:x:data"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

# XEP-0420 §"rpad": random padding, 0-200 characters on top of a minimum.
RPAD_MIN = 16
RPAD_EXTRA = 200
# Bound on one IQ round trip and on connecting.
IQ_TIMEOUT = 20
MAX_LINE = 16 << 20
UNDECIDED = "undecided"

log = logging.getLogger("xmpppeer")


class DriverError(Exception):
    """A bad request; reported to Go as error_type DriverError."""


def want_str(value, what):
    if not isinstance(value, str) or value == "":
        raise DriverError(f"{what}: want a non-empty string")
    return value


# ---------------------------------------------------------------------------
# Storage: python-omemo's key-value store, in memory (one process = one device).


class MemoryStorage(omemo.Storage):
    def __init__(self):
        super().__init__(disable_cache=True)
        self.data = {}

    async def _load(self, key):
        if key in self.data:
            return omemo.Just(self.data[key])
        return omemo.Nothing()

    async def _store(self, key, value):
        self.data[key] = value

    async def _delete(self, key):
        self.data.pop(key, None)


# ---------------------------------------------------------------------------
# XMPP helpers.


def publish_options(fields):
    x = ET.Element(f"{{{NS_DATA}}}x", {"type": "submit"})
    for var, value, ftype in [("FORM_TYPE", PUBLISH_OPTIONS, "hidden")] + [(k, v, None) for k, v in fields]:
        field = ET.SubElement(x, f"{{{NS_DATA}}}field", {"var": var})
        if ftype:
            field.set("type", ftype)
        ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return x


def iq_condition(e):
    try:
        return e.iq["error"]["condition"]
    except Exception:  # noqa: BLE001 - diagnostics only
        return "unknown"


def items_of(iq):
    """The (id, payload element) pairs of a pubsub items result."""
    out = []
    items = iq.xml.find("{http://jabber.org/protocol/pubsub}pubsub/{http://jabber.org/protocol/pubsub}items")
    if items is None:
        return out
    for item in items.findall("{http://jabber.org/protocol/pubsub}item"):
        children = list(item)
        out.append((item.get("id"), children[0] if children else None))
    return out


class Peer:
    """The process-wide state: one client, one session manager."""

    def __init__(self):
        self.xmpp = None
        self.sm = None
        self.jid = None
        self.device_id = None
        self.lock = asyncio.Lock()  # one python-omemo operation at a time
        self.online = None  # future: set when session_start has run

    # -- python-omemo's I/O --------------------------------------------------

    async def publish(self, node, item_id, payload, fields):
        try:
            await self.xmpp["xep_0060"].publish(
                None, node, id=item_id, payload=payload,
                options=publish_options(fields), timeout=IQ_TIMEOUT)
        except (IqError, IqTimeout) as e:
            raise omemo.BundleUploadFailed(f"publish to {node}: {iq_condition(e) if isinstance(e, IqError) else 'timeout'}") from e

    async def get_items(self, jid, node, item_id=None):
        try:
            if item_id is None:
                iq = await self.xmpp["xep_0060"].get_items(jid, node, timeout=IQ_TIMEOUT)
            else:
                iq = await self.xmpp["xep_0060"].get_item(jid, node, item_id, timeout=IQ_TIMEOUT)
        except IqError as e:
            if iq_condition(e) == "item-not-found":
                return None
            raise
        return items_of(iq)


PEER = Peer()


class XMPPSessionManager(omemo.SessionManager):
    # create() instantiates cls() itself; the I/O methods read PEER.

    async def _upload_bundle(self, bundle):
        if bundle.namespace != NS2:
            raise omemo.UnknownNamespace(bundle.namespace)
        element = twomemo.etree.serialize_bundle(bundle)
        await PEER.publish(NODE_BUNDLES, str(bundle.device_id), element,
                           [("pubsub#access_model", "open"), ("pubsub#max_items", "max")])
        log.info("published bundle %d", bundle.device_id)

    async def _download_bundle(self, namespace, bare_jid, device_id):
        if namespace != NS2:
            raise omemo.UnknownNamespace(namespace)
        try:
            items = await PEER.get_items(bare_jid, NODE_BUNDLES, str(device_id))
        except (IqError, IqTimeout) as e:
            raise omemo.BundleDownloadFailed(f"bundle {bare_jid}/{device_id}: {e}") from e
        for item_id, payload in items or []:
            if item_id == str(device_id) and payload is not None:
                log.info("downloaded bundle %s/%d", bare_jid, device_id)
                return twomemo.etree.parse_bundle(payload, bare_jid, device_id)
        raise omemo.BundleNotFound(f"no bundle of {bare_jid}/{device_id}")

    async def _delete_bundle(self, namespace, device_id):
        if namespace != NS2:
            raise omemo.UnknownNamespace(namespace)
        try:
            await PEER.xmpp["xep_0060"].retract(None, NODE_BUNDLES, str(device_id), timeout=IQ_TIMEOUT)
        except IqError as e:
            if iq_condition(e) != "item-not-found":
                raise omemo.BundleDeletionFailed(str(e)) from e
        except IqTimeout as e:
            raise omemo.BundleDeletionFailed("timeout") from e

    async def _upload_device_list(self, namespace, device_list):
        if namespace != NS2:
            raise omemo.UnknownNamespace(namespace)
        element = twomemo.etree.serialize_device_list(device_list)
        try:
            await PEER.publish(NODE_DEVICES, "current", element, [("pubsub#access_model", "open")])
        except omemo.BundleUploadFailed as e:
            raise omemo.DeviceListUploadFailed(str(e)) from e
        log.info("published device list %s", sorted(device_list))

    async def _download_device_list(self, namespace, bare_jid):
        if namespace != NS2:
            raise omemo.UnknownNamespace(namespace)
        try:
            items = await PEER.get_items(bare_jid, NODE_DEVICES)
        except (IqError, IqTimeout) as e:
            raise omemo.DeviceListDownloadFailed(f"device list of {bare_jid}: {e}") from e
        items = items or []
        pick = next((p for i, p in items if i == "current"), None)
        if pick is None and items:
            pick = items[-1][1]
        if pick is None or len(pick) == 0:
            return {}
        device_list = twomemo.etree.parse_device_list(pick)
        log.info("downloaded device list of %s: %s", bare_jid, sorted(device_list))
        return device_list

    async def _evaluate_custom_trust_level(self, device):
        name = device.trust_level_name
        if name in ("trusted", UNDECIDED):  # blind trust
            return omemo.TrustLevel.TRUSTED
        if name == "distrusted":
            return omemo.TrustLevel.DISTRUSTED
        raise omemo.UnknownTrustLevel(name)

    async def _make_trust_decision(self, undecided, identifier):
        log.info("trust decision requested for %s", sorted((d.bare_jid, d.device_id) for d in undecided))

    async def _send_message(self, message, bare_jid):
        if message.namespace != NS2:
            raise omemo.UnknownNamespace(message.namespace)
        stanza = send_stanza(bare_jid, twomemo.etree.serialize_message(message))
        emit({"event": "auto", "to": bare_jid, "empty": bool(message.content.empty), "stanza": str(stanza)})
        log.info("sent automatic message to %s (empty=%s)", bare_jid, message.content.empty)


def send_stanza(to, encrypted):
    msg = PEER.xmpp.make_message(mto=to, mtype="chat")
    msg["id"] = secrets.token_hex(8)
    msg.xml.append(encrypted)
    ET.SubElement(msg.xml, f"{{{NS_EME}}}encryption", {"namespace": NS2, "name": "OMEMO"})
    ET.SubElement(msg.xml, f"{{{NS_HINTS}}}store")
    msg.send()
    return msg


# ---------------------------------------------------------------------------
# SCE (XEP-0420 0.5) with the OMEMO 2 profile (XEP-0384 0.9 §"SCE Profile").


def make_envelope(text, from_jid, to_jid):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rpad = "".join(secrets.choice(alphabet) for _ in range(RPAD_MIN + secrets.randbelow(RPAD_EXTRA + 1)))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f"<envelope xmlns='{NS_SCE}'>"
        f"<content><body xmlns='{NS_CLIENT}'>{escape(text)}</body></content>"
        f"<rpad>{rpad}</rpad>"
        f"<from jid={quoteattr(from_jid)}/>"
        f"<to jid={quoteattr(to_jid)}/>"
        f"<time stamp='{stamp}'/>"
        f"</envelope>"
    ).encode("utf-8")


def bare(jid):
    return jid.split("/", 1)[0]


def read_envelope(plaintext, sender, own):
    """Checks an OMEMO 2 SCE envelope and returns the body text."""
    root = ET.fromstring(plaintext.decode("utf-8"))
    if root.tag != f"{{{NS_SCE}}}envelope":
        raise ValueError(f"not an SCE envelope: {root.tag}")
    contents = root.findall(f"{{{NS_SCE}}}content")
    if len(contents) != 1:
        raise ValueError(f"{len(contents)} <content/> elements")
    if root.find(f"{{{NS_SCE}}}rpad") is None:
        raise ValueError("no <rpad/> (required by the OMEMO 2 profile)")
    f = root.find(f"{{{NS_SCE}}}from")
    if f is not None and bare(f.get("jid", "")) != sender:
        raise ValueError(f"<from jid='{f.get('jid')}'/> is not the sender {sender}")
    t = root.find(f"{{{NS_SCE}}}to")
    if t is not None and bare(t.get("jid", "")) != own:
        raise ValueError(f"<to jid='{t.get('jid')}'/> is not this account {own}")
    body = contents[0].find(f"{{{NS_CLIENT}}}body")
    if body is None:
        raise ValueError("no <body/> in <content/>")
    return body.text or ""


# ---------------------------------------------------------------------------
# Receiving.


def on_plain_message(msg):
    # slixmpp's "message" event fires only for messages with a <body/>.
    if msg.xml.find(f"{{{NS2}}}encrypted") is None:
        emit({"event": "plaintext", "from": msg["from"].bare, "stanza": str(msg)})


async def on_message(msg):
    sender = msg["from"].bare
    encrypted = msg.xml.find(f"{{{NS2}}}encrypted")
    if encrypted is None:
        return
    delayed = msg.xml.find(f"{{{NS_DELAY}}}delay") is not None
    if PEER.sm is None:
        emit({"event": "error", "from": sender, "error": "message before start", "stanza": str(msg)})
        return
    try:
        async with PEER.lock:
            message = twomemo.etree.parse_message(encrypted, sender)
            entry = next((e for e in message.keys
                          if e[0].bare_jid == PEER.jid and e[0].device_id == PEER.device_id), None)
            kex = entry is not None and entry[1] is not None
            plaintext, device, _ = await PEER.sm.decrypt(message)
        if plaintext is None:
            emit({"event": "empty", "from": sender, "device": device.device_id, "kex": kex, "delayed": delayed,
                  "stanza": str(msg)})
            return
        text = read_envelope(plaintext, sender, PEER.jid)
        emit({"event": "message", "from": sender, "device": device.device_id, "text": text, "kex": kex,
              "delayed": delayed, "envelope": plaintext.decode("utf-8"), "stanza": str(msg)})
    except Exception as e:  # reported to Go with the stanza
        log.warning("decryption failed:\n%s", traceback.format_exc().rstrip())
        emit({"event": "error", "from": sender, "error": f"{type(e).__name__}: {e}", "stanza": str(msg)})


async def on_pep_devices(msg):
    # XEP-0163 +notify: a contact's (or our own) device list changed.
    if PEER.sm is None:
        return
    sender = msg["from"].bare
    for item_id, payload in items_of_event(msg):
        if payload is None or payload.tag != f"{{{NS2}}}devices":
            continue
        try:
            device_list = twomemo.etree.parse_device_list(payload) if len(payload) else {}
            async with PEER.lock:
                await PEER.sm.update_device_list(NS2, sender, device_list)
            log.info("device list notification from %s: %s", sender, sorted(device_list))
        except Exception:  # noqa: BLE001 - a bad notification must not stop the peer
            log.warning("bad device list notification:\n%s", traceback.format_exc().rstrip())


def items_of_event(msg):
    ev = msg.xml.find("{http://jabber.org/protocol/pubsub#event}event/{http://jabber.org/protocol/pubsub#event}items")
    if ev is None or ev.get("node") != NODE_DEVICES:
        return []
    out = []
    for item in ev.findall("{http://jabber.org/protocol/pubsub#event}item"):
        children = list(item)
        out.append((item.get("id"), children[0] if children else None))
    return out


# ---------------------------------------------------------------------------
# Commands.


class Driver:
    def __init__(self):
        self.disconnected = None

    async def cmd_ping(self, req):
        return {"pong": True}

    async def cmd_start(self, req):
        if PEER.xmpp is not None:
            raise DriverError("already started")
        jid = want_str(req.get("jid"), "jid")
        if "/" in jid:
            raise DriverError("jid must be bare")
        password = want_str(req.get("password"), "password")
        self.host = want_str(req.get("host"), "host")
        self.port = req.get("port")
        if not isinstance(self.port, int):
            raise DriverError("port: want an integer")
        resource = req.get("resource") or "slixmpp-" + secrets.token_hex(4)
        xmpp = slixmpp.ClientXMPP(f"{jid}/{resource}", password)
        xmpp.use_aiodns = False  # it would query DNS even for an IP literal
        for plugin in ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163", "xep_0199"):
            xmpp.register_plugin(plugin)
        # XEP-0163 §4: ask for device list notifications (+notify in the
        # entity capabilities sent with presence).
        xmpp["xep_0163"].add_interest(NODE_DEVICES)
        PEER.xmpp, PEER.jid = xmpp, jid
        # Every message with an OMEMO 2 element (empty ones have no body).
        xmpp.register_handler(CoroutineCallback(
            "OMEMO 2", MatchXPath(f"{{{NS_CLIENT}}}message/{{{NS2}}}encrypted"), on_message))
        xmpp.add_event_handler("message", on_plain_message)
        xmpp.add_event_handler("pubsub_publish", on_pep_devices)
        xmpp.add_event_handler("disconnected", lambda _e: emit({"event": "disconnected"}))
        xmpp.add_event_handler("failed_auth", lambda _e: log.warning("authentication failed"))
        await self.connect()

        wanted = req.get("device_id")
        patched = None
        if wanted is not None:
            if not isinstance(wanted, int) or not 1 <= wanted < 2 ** 31:
                raise DriverError("device_id: want 1 … 2^31−1")
            import omemo.session_manager as sm_module
            patched = sm_module.secrets

            class Fixed:
                def randbelow(self, _n):
                    return wanted - omemo.SessionManager.DEVICE_ID_MIN
            sm_module.secrets = Fixed()
        try:
            async with PEER.lock:
                storage = MemoryStorage()
                PEER.sm = await XMPPSessionManager.create(
                    [twomemo.Twomemo(storage)],
                    storage,
                    jid,
                    None,
                    UNDECIDED,
                    # See peer.py: a lower threshold breaks the first key
                    # exchange in python-omemo 1.0.2.
                    pre_key_refill_threshold=99,
                    async_framework=omemo.AsyncFramework.ASYNCIO,
                )
                await PEER.sm.after_history_sync()
        finally:
            if patched is not None:
                sm_module.secrets = patched
        own, _ = await PEER.sm.get_own_device_information()
        PEER.device_id = own.device_id
        # Online only now: offline messages come after initial presence, and
        # the session manager must exist to decrypt them.
        xmpp.send_presence()
        log.info("started %s device %d", xmpp.boundjid.full, PEER.device_id)
        return {
            "jid": jid, "full_jid": xmpp.boundjid.full, "device_id": PEER.device_id,
            "fingerprint": "".join(PEER.sm.format_identity_key(own.identity_key)),
        }

    async def connect(self):
        xmpp = PEER.xmpp
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def on_start(_e):
            if not started.done():
                started.set_result(True)

        def on_fail(e):
            if not started.done():
                started.set_exception(DriverError(f"connection failed: {e}"))

        xmpp.add_event_handler("session_start", on_start, disposable=True)
        xmpp.add_event_handler("failed_auth", on_fail, disposable=True)
        xmpp.add_event_handler("connection_failed", on_fail, disposable=True)
        xmpp.connect((self.host, self.port), force_starttls=False, disable_starttls=True)
        await asyncio.wait_for(started, IQ_TIMEOUT)

    async def cmd_send(self, req):
        if PEER.sm is None:
            raise DriverError("not started")
        to = want_str(req.get("to"), "to")
        if "/" in to:
            raise DriverError("to must be bare")
        text = req.get("text")
        if not isinstance(text, str):
            raise DriverError("text: want a string")
        envelope = make_envelope(text, PEER.xmpp.boundjid.full, to)
        async with PEER.lock:
            # Device lists may have changed without a notification reaching us.
            await PEER.sm.refresh_device_list(NS2, to)
            messages, errors = await PEER.sm.encrypt(frozenset([to]), {NS2: envelope}, [NS2])
        message = next((m for m in messages if m.namespace == NS2), None)
        if message is None:
            raise DriverError("python-omemo made no OMEMO 2 message")
        stanza = send_stanza(to, twomemo.etree.serialize_message(message))
        recipients = sorted(
            ({"jid": k.bare_jid, "device_id": k.device_id, "kex": kex is not None} for k, kex in message.keys),
            key=lambda r: (r["jid"], r["device_id"]))
        return {
            "recipients": recipients,
            "errors": [{"namespace": e.namespace, "jid": e.bare_jid, "device_id": e.device_id,
                        "error": f"{type(e.exception).__name__}: {e.exception}"} for e in errors],
            "stanza": str(stanza),
        }

    async def cmd_disconnect(self, req):
        xmpp = PEER.xmpp
        if xmpp is None:
            raise DriverError("not started")
        done = asyncio.get_running_loop().create_future()
        xmpp.add_event_handler("disconnected", lambda _e: done.done() or done.set_result(True), disposable=True)
        xmpp.disconnect()
        await asyncio.wait_for(done, IQ_TIMEOUT)
        return {}

    async def cmd_connect(self, req):
        if PEER.xmpp is None:
            raise DriverError("not started")
        await self.connect()
        PEER.xmpp.send_presence()
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
        "slixmpp": slixmpp.__version__,
        "xmlschema": xmlschema.__version__,
    }})
    while True:
        line = await reader.readline()
        if not line:
            log.info("stdin closed; exiting")
            break
        if not line.strip():
            continue
        rid, cmd = None, None
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
        except Exception as e:  # every failure becomes a reply
            if not isinstance(e, DriverError):
                log.warning("command failed:\n%s", traceback.format_exc().rstrip())
            reply = {"error": f"{type(e).__name__}: {e}", "error_type": type(e).__name__}
        reply["id"] = rid
        emit(reply)
        if cmd == "shutdown":
            break
    if PEER.xmpp is not None and PEER.xmpp.transport is not None:
        PEER.xmpp.disconnect()
        await asyncio.sleep(0.2)


def main():
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(relativeCreated)9.1fms %(levelname).1s %(name)s: %(message)s",
    )
    # slixmpp at INFO is terse; its DEBUG logs every stanza (on request).
    if os.environ.get("OMEMOTEST_LOG", "").upper() == "DEBUG":
        logging.getLogger("slixmpp").setLevel(logging.DEBUG)
    else:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
