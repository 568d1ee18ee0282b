"""deit_lora serve on a free port of 127.0.0.1, for the server's tests (standard library only)."""
import http.client, os, signal, subprocess


class Server:
    def __init__(self, bin_, model, *args):
        self.p = subprocess.Popen([bin_, "serve", "--model", model, "--port", "0", "--threads", "2"] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if "listening on" not in line:
            raise SystemExit("server did not start: " + line + self.p.stderr.read())
        self.port = int(line.split("127.0.0.1:")[1].split()[0])

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def rss_kib(self):
        for line in open("/proc/%d/status" % self.p.pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return None
