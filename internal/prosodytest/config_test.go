package prosodytest

import "testing"

func TestWriteCerts(t *testing.T) {
	dir := t.TempDir()
	pool, err := writeCerts(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if pool == nil {
		t.Fatal("no CA pool")
	}
	s := &Server{CA: pool, Domain: "localhost"}
	if cfg := s.TLSConfig(); cfg.ServerName != "localhost" || cfg.RootCAs != pool {
		t.Errorf("TLSConfig %+v", cfg)
	}
	if (&Server{}).TLSConfig() != nil {
		t.Error("TLSConfig without TLS")
	}
}
