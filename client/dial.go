package client

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"

	"hush.im/sce"
)

// defaultMechanisms are the SASL mechanisms Dial offers when
// Options.Mechanisms is empty, strongest first (RFC 7677, RFC 5802,
// RFC 4616). SASL only runs on a TLS stream or a PlainLoopback one.
var defaultMechanisms = []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}

// Options configures Dial. The zero value connects to the account's domain
// (DNS SRV, RFC 6120 §3.2) with STARTTLS and the system's roots.
type Options struct {
	// Addr is the server's address, "host:port". Empty means looking the
	// domain up (RFC 6120 §3.2.1 SRV records, XEP-0368 for direct TLS).
	Addr string
	// TLS is the TLS configuration, cloned before use; nil means the system
	// roots. An empty ServerName becomes the account's domain; MinVersion
	// is raised to TLS 1.2. Tests pass a configuration trusting a private
	// CA.
	TLS *tls.Config
	// DirectTLS starts TLS on connect (XEP-0368) instead of STARTTLS
	// (RFC 6120 §5).
	DirectTLS bool
	// PlainLoopback connects over plain TCP without TLS. It is refused
	// (ErrInsecureRemote) unless Addr resolves to a loopback address: it is
	// for tests against a local server only.
	PlainLoopback bool
	// Mechanisms are the SASL mechanisms to offer, preferred first; empty
	// means SCRAM-SHA-256, SCRAM-SHA-1, PLAIN (RFC 7677, RFC 5802,
	// RFC 4616).
	Mechanisms []sasl.Mechanism

	// Name is the XEP-0030 identity name; empty means "hush".
	Name string
	// Type is the identity's type in the client category
	// (XEP-0030 registry: pc, phone, bot, …); empty means "pc".
	Type string
	// CapsNode is the XEP-0115 node; empty means "https://hush.im".
	CapsNode string
	// Features are extra XEP-0030 features to advertise.
	Features []string

	// RequireEncryption makes every contact require encryption (DESIGN:
	// encryption always on): Send refuses a message or presence with
	// content for another account unless it is encrypted. Without it, see
	// Client.SetRequireEncryption for single contacts.
	RequireEncryption bool

	// Logger receives diagnostics (dropped stanzas, handler errors); nil
	// discards them.
	Logger *slog.Logger
}

// Dial connects account (a bare JID, or a full JID whose resource is asked
// for at binding) to its server, authenticates with password, binds a
// resource and starts serving the stream. The client is not yet available:
// register handlers, then call Online.
func Dial(ctx context.Context, account jid.JID, password string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if account.Localpart() == "" {
		return nil, fmt.Errorf("client: account %q has no localpart", account.String())
	}
	cfg := &tls.Config{}
	if opts.TLS != nil {
		cfg = opts.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = account.Domainpart()
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}

	conn, err := dialConn(ctx, account, opts, cfg)
	if err != nil {
		return nil, err
	}

	mechs := opts.Mechanisms
	if len(mechs) == 0 {
		mechs = defaultMechanisms
	}
	features := []xmpp.StreamFeature{authFeature(xmpp.SASL("", password, mechs...)), bindFeature(account.Resourcepart())}
	var state xmpp.SessionState
	switch {
	case opts.PlainLoopback:
		// SASL is only negotiated on a secure stream: the loopback
		// connection stands in for one (dialConn checked the address).
		state = xmpp.Secure
	case !isTLS(conn):
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(cfg)}, features...)
	}
	neg := xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	})
	session, err := xmpp.NewSession(ctx, account.Domain(), account, conn, state, neg)
	if err != nil {
		conn.Close()
		if ae := (*AuthError)(nil); errors.As(err, &ae) {
			return nil, ae // says what failed on its own
		}
		return nil, fmt.Errorf("client: negotiating the stream with %s: %w", account.Domainpart(), err)
	}
	return newClient(session, opts), nil
}

func isTLS(c net.Conn) bool {
	_, ok := c.(*tls.Conn)
	return ok
}

func dialConn(ctx context.Context, account jid.JID, opts *Options, cfg *tls.Config) (net.Conn, error) {
	if opts.PlainLoopback && opts.DirectTLS {
		return nil, errors.New("client: PlainLoopback and DirectTLS exclude each other")
	}
	if opts.Addr == "" {
		if opts.PlainLoopback {
			return nil, fmt.Errorf("%w: PlainLoopback needs Options.Addr", ErrInsecureRemote)
		}
		d := dial.Dialer{NoTLS: !opts.DirectTLS, TLSConfig: cfg}
		conn, err := d.Dial(ctx, "tcp", account)
		if err != nil {
			return nil, fmt.Errorf("client: connecting to %s: %w", account.Domainpart(), err)
		}
		return conn, nil
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: connecting to %s: %w", opts.Addr, err)
	}
	if opts.PlainLoopback {
		ta, ok := conn.RemoteAddr().(*net.TCPAddr)
		if !ok || !ta.IP.IsLoopback() {
			conn.Close()
			return nil, fmt.Errorf("%w: %s", ErrInsecureRemote, conn.RemoteAddr())
		}
		return conn, nil
	}
	if opts.DirectTLS {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("client: TLS with %s: %w", opts.Addr, err)
		}
		return tc, nil
	}
	return conn, nil
}

// authFeature wraps the SASL stream feature so that a refusal by the
// server becomes an AuthError, distinct from a broken connection.
func authFeature(f xmpp.StreamFeature) xmpp.StreamFeature {
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data any) (xmpp.SessionState, io.ReadWriter, error) {
		mask, rw, err := negotiate(ctx, s, data)
		if err != nil && !isConnError(err) && ctx.Err() == nil {
			err = &AuthError{Err: err}
		}
		return mask, rw, err
	}
	return f
}

// nsBind is the resource binding namespace (RFC 6120 §7).
const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// bindFeature binds a resource (RFC 6120 §7.5, §7.6), asking for
// resource when it is not empty. (mellium's BindResource sends an empty
// <resource/> whatever the address.)
func bindFeature(resource string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       name(nsBind, "bind"),
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, errors.New("client: resource binding is client-side only")
		},
		Parse: func(_ context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			r := s.TokenReader()
			defer r.Close()
			w := s.TokenWriter()
			defer w.Close()
			var kids []sce.Element
			if resource != "" {
				kids = append(kids, sce.TextElement(name(nsBind, "resource"), resource))
			}
			id := newID()
			req := newStanza("iq", []xml.Attr{attr("type", "set"), attr("id", id)}, elem(name(nsBind, "bind"), nil, kids...))
			if _, err := req.WriteXML(w); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			resp, err := sce.ReadStanza(r)
			if err != nil {
				return 0, nil, fmt.Errorf("client: resource binding: %w", err)
			}
			if resp.Name.Local != "iq" || resp.AttrValue("id") != id {
				return 0, nil, fmt.Errorf("%w: unexpected <%s/> during resource binding", ErrMalformed, resp.Name.Local)
			}
			if resp.AttrValue("type") == "error" {
				return 0, nil, fmt.Errorf("client: resource binding: %w", parseStanzaError(resp))
			}
			b, ok := stanzaChild(resp, name(nsBind, "bind"))
			if !ok {
				return 0, nil, fmt.Errorf("%w: bind result without <bind/>", ErrMalformed)
			}
			j, ok := child(b, name(nsBind, "jid"))
			if !ok {
				return 0, nil, fmt.Errorf("%w: bind result without <jid/>", ErrMalformed)
			}
			full, err := jid.Parse(j.Text())
			if err != nil || full.Resourcepart() == "" {
				return 0, nil, fmt.Errorf("%w: bound JID %q", ErrMalformed, j.Text())
			}
			s.UpdateAddr(full)
			return xmpp.Ready, nil, nil
		},
	}
}

func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
