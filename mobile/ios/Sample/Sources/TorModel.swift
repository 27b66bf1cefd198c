import Foundation
import Network
import Onionlite
import UIKit

/// TorModel owns the app's one onionlite client. Everything that blocks
/// runs on `queue`; gomobile callbacks arrive on Go threads and hop to the
/// main queue before touching published state.
final class TorModel: NSObject, ObservableObject {
    static let page = URL(string: "https://check.torproject.org/api/ip")!

    @Published var phase = "starting"
    @Published var percent = 0.0
    @Published var status = ""
    @Published var page = ""

    private let queue = DispatchQueue(label: "org.onionlite.sample.tor", qos: .userInitiated)
    private let paths = NWPathMonitor()
    private var client: OnionliteClient?
    private var socksPort = 0
    private var started = false

    func start() {
        guard !started else { return }
        started = true
        queue.async { self.run() }
        var first = true
        paths.pathUpdateHandler = { [weak self] _ in
            // The first update is the network we start on.
            if first { first = false; return }
            self?.queue.async { self?.client?.networkChanged() }
        }
        paths.start(queue: queue)
        NotificationCenter.default.addObserver(
            forName: UIApplication.didReceiveMemoryWarningNotification, object: nil, queue: nil
        ) { [weak self] _ in
            self?.queue.async { _ = self?.client?.trimMemory(OnionliteTrimCritical) }
        }
    }

    func setBackground(_ background: Bool) {
        queue.async { self.client?.setDormant(background) }
    }

    private func run() {
        let cfg = OnionliteConfig()
        cfg.dataDir = TorModel.dataDirectory().path
        cfg.logLevel = OnionliteLogInfo
        cfg.logger = LogSink()
        // cfg.proxy = "socks5://127.0.0.1:1080"  // reach relays through an upstream proxy
        // cfg.memoryBudget = 24 << 20             // inside a Network Extension: see README.md
        var err: NSError?
        guard let client = OnionliteNewClient(cfg, &err) else {
            publish(status: TorModel.describe(err))
            return
        }
        self.client = client
        do {
            try client.bootstrap(ProgressSink(model: self))
            // startSOCKS returns a non-optional String, so Swift hands back
            // its error through the pointer instead of throwing.
            let address = client.startSOCKS("127.0.0.1:0", error: &err)
            if let err = err { throw err }
            socksPort = Int(address.split(separator: ":").last ?? "") ?? 0
            publish(status: "ready; SOCKS5 on \(address)")
            let text = try fetch(TorModel.page)
            let stats = client.statsJSON()
            DispatchQueue.main.async {
                self.page = text
                self.status = "fetched \(TorModel.page.host ?? "") through \(address)\n\(stats)"
            }
        } catch {
            publish(status: TorModel.describe(error))
        }
    }

    /// Fetches url with URLSession through the SOCKS port; the exit
    /// resolves the name.
    private func fetch(_ url: URL) throws -> String {
        let conf = URLSessionConfiguration.ephemeral
        if #available(iOS 17.0, *) {
            conf.proxyConfigurations = [
                ProxyConfiguration(socksv5Proxy: .hostPort(host: "127.0.0.1", port: NWEndpoint.Port(rawValue: UInt16(socksPort))!)),
            ]
        } else {
            conf.connectionProxyDictionary = ["SOCKSEnable": 1, "SOCKSProxy": "127.0.0.1", "SOCKSPort": socksPort]
        }
        conf.timeoutIntervalForRequest = 120
        let session = URLSession(configuration: conf)
        defer { session.finishTasksAndInvalidate() }
        let done = DispatchSemaphore(value: 0)
        var result: Result<String, Error> = .failure(URLError(.unknown))
        session.dataTask(with: url) { data, response, error in
            if let error = error {
                result = .failure(error)
            } else {
                let code = (response as? HTTPURLResponse)?.statusCode ?? 0
                result = .success("HTTP \(code)\n\n" + String(decoding: (data ?? Data()).prefix(4000), as: UTF8.self))
            }
            done.signal()
        }.resume()
        done.wait()
        return try result.get()
    }

    /// Sends request on a direct stream and returns the reply, read in
    /// bounded pieces (at most 16 KiB cross the bridge per call).
    func exchange(host: String, port: Int64, request: Data) throws -> Data {
        guard let client = client else { throw URLError(.notConnectedToInternet) }
        let stream = try client.dial(host, port: port)
        defer { try? stream.close() }
        try stream.setDeadline(60_000)
        var written: Int64 = 0
        try stream.write(request, written: &written)
        var reply = Data()
        while true {
            do {
                reply.append(try stream.read(16 << 10))
            } catch {
                if OnionliteErrorKind(error.localizedDescription) == OnionliteKindEOF { break }
                throw error
            }
        }
        return reply
    }

    func stop() {
        queue.async {
            self.paths.cancel()
            try? self.client?.stop()
            self.client = nil
        }
    }

    fileprivate func publish(status: String) {
        DispatchQueue.main.async { self.status = status }
    }

    fileprivate func publish(phase: String, percent: Int64) {
        DispatchQueue.main.async {
            self.phase = phase
            self.percent = Double(percent)
        }
    }

    /// Library/Caches/onionlite: inside the sandbox, not backed up.
    static func dataDirectory() -> URL {
        let caches = FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0]
        return caches.appendingPathComponent("onionlite", isDirectory: true)
    }

    /// Explains an error from the binding by its stable kind.
    static func describe(_ error: Error?) -> String {
        guard let error = error else { return "unknown error" }
        switch OnionliteErrorKind(error.localizedDescription) {
        case OnionliteKindClockSkew: return "The device clock is wrong; fix the date and time."
        case OnionliteKindBootstrapFailed: return "Could not reach the Tor network."
        case OnionliteKindTimeout: return "Timed out."
        case OnionliteKindExitRefused: return "The exit relay could not reach the site."
        default: return error.localizedDescription
        }
    }
}

/// Receives bootstrap progress on a Go thread.
private final class ProgressSink: NSObject, OnionliteProgressListenerProtocol {
    private weak var model: TorModel?

    init(model: TorModel) {
        self.model = model
    }

    func onProgress(_ progress: OnionliteProgress?) throws {
        guard let progress = progress else { return }
        model?.publish(phase: progress.phase, percent: progress.percent)
    }
}

/// Sends the client's log to the unified log.
private final class LogSink: NSObject, OnionliteLoggerProtocol {
    func log(_ level: Int64, message: String?) throws {
        NSLog("onionlite[%lld]: %@", level, message ?? "")
    }
}
