// BindingMain drives onionlite's gobind Java binding on a desktop JVM the
// way an Android app would, against the test network that the Go test
// (java_test.go) runs. It prints result lines the Go test checks
// ("socks-sha256 HEX", ...) and ends with "OK"; any failure prints
// "FAIL: ..." and exits 1.
//
// usage: java BindingMain AUTHORITIES_FILE DATA_DIR HOST:PORT OUT_FILE
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import onionlite.Client;
import onionlite.Config;
import onionlite.Onionlite;
import onionlite.Progress;
import onionlite.ProgressListener;
import onionlite.Stream;

public class BindingMain {
	static void check(boolean ok, String what) {
		if (!ok) {
			throw new AssertionError(what);
		}
	}

	static String hex(byte[] b) {
		StringBuilder sb = new StringBuilder();
		for (byte x : b) {
			sb.append(String.format("%02x", x & 0xff));
		}
		return sb.toString();
	}

	static String kindOf(Exception e) {
		return Onionlite.errorKind(e.getMessage());
	}

	public static void main(String[] args) {
		int code = 0;
		try {
			run(args);
			System.out.println("OK");
		} catch (Throwable e) {
			System.out.println("FAIL: " + e);
			e.printStackTrace(System.out);
			code = 1;
		}
		// Go threads that called into Java stay attached, so the JVM would
		// never exit by itself.
		System.exit(code);
	}

	static void run(String[] args) throws Exception {
		String authorities = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8);
		String dataDir = args[1];
		String target = args[2];
		String outFile = args[3];
		String host = target.substring(0, target.lastIndexOf(':'));
		long port = Long.parseLong(target.substring(target.lastIndexOf(':') + 1));
		String url = "http://" + target + "/1MiB.bin";

		// A bad Config fails in the constructor with kind config.
		try {
			new Client(new Config());
			check(false, "Client without a data dir was created");
		} catch (Exception e) {
			check(kindOf(e).equals(Onionlite.KindConfig), "bad config: " + e.getMessage());
		}

		List<String> logs = Collections.synchronizedList(new ArrayList<>());
		Config cfg = new Config();
		cfg.setDataDir(dataDir);
		cfg.setAuthorities(authorities);
		cfg.setTestNetwork(true);
		cfg.setLogLevel(Onionlite.LogInfo);
		cfg.setLogger((level, message) -> logs.add(level + " " + message));
		check(cfg.getDataDir().equals(dataDir), "Config getter");
		Client client = new Client(cfg);

		// Progress arrives on Go threads; the first call throws, which Go
		// must log and survive.
		List<String> progress = Collections.synchronizedList(new ArrayList<>());
		Thread mainThread = Thread.currentThread();
		AtomicReference<String> onMain = new AtomicReference<>();
		ProgressListener listener = new ProgressListener() {
			@Override
			public void onProgress(Progress p) throws Exception {
				if (Thread.currentThread() == mainThread) {
					onMain.set(p.getPhase());
				}
				progress.add(p.getPhase() + " " + p.getPercent() + " " + p.getDirBytes());
				if (progress.size() == 1) {
					throw new Exception("java listener says no");
				}
			}
		};
		client.bootstrap(listener);
		check(onMain.get() == null, "progress delivered on the calling thread");
		check(progress.size() >= 2, "only " + progress.size() + " progress reports");
		String last = progress.get(progress.size() - 1);
		check(last.startsWith("ready 100 "), "last progress " + last);
		check(Long.parseLong(last.split(" ")[2]) > 0, "no directory bytes counted: " + last);
		check(client.isReady(), "not ready after bootstrap");
		System.out.println("progress " + progress.size() + " last " + last);

		// The SOCKS port, used the way OkHttp would.
		String socks = client.startSOCKS("127.0.0.1:0");
		int socksPort = Integer.parseInt(socks.substring(socks.lastIndexOf(':') + 1));
		Proxy proxy = new Proxy(Proxy.Type.SOCKS, new InetSocketAddress("127.0.0.1", socksPort));
		HttpURLConnection conn = (HttpURLConnection) new URL(url).openConnection(proxy);
		check(conn.getResponseCode() == 200, "SOCKS status " + conn.getResponseCode());
		MessageDigest md = MessageDigest.getInstance("SHA-256");
		long total = 0;
		try (InputStream in = conn.getInputStream()) {
			byte[] buf = new byte[16384];
			int n;
			while ((n = in.read(buf)) > 0) {
				md.update(buf, 0, n);
				total += n;
			}
		}
		conn.disconnect();
		System.out.println("socks-sha256 " + hex(md.digest()) + " " + total);

		// A direct stream: bounded reads until kind eof.
		Stream s = client.dial(host, port);
		s.setDeadline(120_000);
		byte[] req = ("GET /1MiB.bin HTTP/1.0\r\nHost: " + target + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
		check(s.write(req) == req.length, "short write");
		java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
		long reads = 0;
		while (true) {
			byte[] b;
			try {
				b = s.read(4096);
			} catch (Exception e) {
				check(kindOf(e).equals(Onionlite.KindEOF), "stream read: " + e.getMessage());
				break;
			}
			check(b != null && b.length > 0 && b.length <= 4096, "read returned " + (b == null ? "null" : b.length + " bytes"));
			got.write(b);
			reads++;
		}
		s.close();
		byte[] resp = got.toByteArray();
		int bodyAt = -1;
		for (int i = 0; i + 3 < resp.length; i++) {
			if (resp[i] == '\r' && resp[i + 1] == '\n' && resp[i + 2] == '\r' && resp[i + 3] == '\n') {
				bodyAt = i + 4;
				break;
			}
		}
		check(bodyAt > 0, "no end of headers in the stream response");
		md.reset();
		md.update(resp, bodyAt, resp.length - bodyAt);
		System.out.println("stream-sha256 " + hex(md.digest()) + " " + (resp.length - bodyAt) + " in " + reads + " reads");

		// Download streams into a file; the bytes never cross the bridge.
		long size = client.download(url, outFile);
		md.reset();
		md.update(Files.readAllBytes(Paths.get(outFile)));
		System.out.println("download-sha256 " + hex(md.digest()) + " " + size);

		// Errors carry their kind.
		int closedPort;
		try (ServerSocket ss = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
			closedPort = ss.getLocalPort();
		}
		try {
			client.dial("127.0.0.1", closedPort);
			check(false, "dial to a closed port succeeded");
		} catch (Exception e) {
			check(kindOf(e).equals(Onionlite.KindExitRefused), "dial to a closed port: " + e.getMessage());
		}
		try {
			client.dial(host, 0);
			check(false, "dial to port 0 succeeded");
		} catch (Exception e) {
			check(kindOf(e).equals(Onionlite.KindBadAddress), "dial to port 0: " + e.getMessage());
		}
		try {
			client.download("http://" + target + "/missing", outFile + ".missing");
			check(false, "download of a missing page succeeded");
		} catch (Exception e) {
			check(kindOf(e).equals(Onionlite.KindHTTP), "download of a missing page: " + e.getMessage());
		}

		// Lifecycle calls; a stream still works afterwards.
		client.setDormant(true);
		check(client.trimMemory(Onionlite.TrimModerate) >= 0, "trimMemory");
		client.setDormant(false);
		client.networkChanged();
		String stats = client.statsJSON();
		// A cold start fetched a full consensus; a refresh since (the test
		// network votes every minute) may have replaced it with a diff.
		check(stats.contains("\"ready\":true") &&
				(stats.contains("\"consensus_source\":\"full\"") || stats.contains("\"consensus_source\":\"diff\"")),
				"stats " + stats);
		System.out.println("stats " + stats);

		// Many small calls and garbage: the reference tracking holds up.
		for (int i = 0; i < 20000; i++) {
			check(Onionlite.errorKind("[timeout] x").equals(Onionlite.KindTimeout), "errorKind");
		}
		System.gc();

		// A read blocked across stop fails with kind closed.
		Stream blocked = client.dial(host, port);
		AtomicReference<String> blockedKind = new AtomicReference<>();
		Thread reader = new Thread(() -> {
			try {
				blocked.read(10);
				blockedKind.set("data");
			} catch (Exception e) {
				blockedKind.set(kindOf(e));
			}
		});
		reader.start();
		client.stop();
		reader.join(60_000);
		check(Onionlite.KindClosed.equals(blockedKind.get()), "blocked read across stop: " + blockedKind.get());
		try {
			client.stop();
			check(false, "second stop succeeded");
		} catch (Exception e) {
			check(kindOf(e).equals(Onionlite.KindClosed), "second stop: " + e.getMessage());
		}
		synchronized (logs) {
			boolean sawListenerError = false, sawReady = false;
			for (String l : logs) {
				sawListenerError |= l.startsWith(Onionlite.LogWarn + " ") && l.contains("java listener says no");
				sawReady |= l.equals(Onionlite.LogInfo + " ready");
			}
			check(sawListenerError, "the listener's exception was not logged: " + logs);
			check(sawReady, "no ready log line: " + logs);
			System.out.println("logs " + logs.size());
		}
	}
}
