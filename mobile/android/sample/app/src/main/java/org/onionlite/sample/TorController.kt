package org.onionlite.sample

import java.io.ByteArrayOutputStream
import java.io.File
import java.net.InetSocketAddress
import java.net.Proxy
import java.util.concurrent.TimeUnit
import okhttp3.OkHttpClient
import okhttp3.Request
import onionlite.Client
import onionlite.Config
import onionlite.Logger
import onionlite.Onionlite
import onionlite.Progress
import onionlite.ProgressListener
import onionlite.Stream

/**
 * TorController owns the app's one onionlite client (gomobile allows one Go
 * library per app, and one client per process is normal). Its blocking
 * methods must run off the main thread; the callbacks arrive on Go threads.
 */
class TorController(private val cacheRoot: File) {
    interface Events {
        fun onProgress(phase: String, percent: Long, dirBytes: Long)
        fun onLog(level: Long, message: String)
    }

    @Volatile private var client: Client? = null
    @Volatile private var socksPort: Int = 0

    /**
     * Starts the client, waits until it has a directory (progress goes to
     * events) and opens a local SOCKS port. Returns "127.0.0.1:PORT".
     */
    fun start(events: Events): String {
        val config = Config()
        config.dataDir = File(cacheRoot, "onionlite").path // getNoBackupFilesDir(): never backed up
        config.logLevel = Onionlite.LogInfo
        config.logger = Logger { level, message -> events.onLog(level, message) }
        // config.proxy = "socks5://127.0.0.1:1080"  // reach relays through an upstream proxy
        // config.memoryBudget = 64L shl 20           // bytes; 0 = the platform default
        val c = Client(config)
        client = c
        c.bootstrap(object : ProgressListener {
            override fun onProgress(progress: Progress) {
                events.onProgress(progress.phase, progress.percent, progress.dirBytes)
            }
        })
        val address = c.startSOCKS("127.0.0.1:0")
        socksPort = address.substringAfterLast(':').toInt()
        return address
    }

    /** Fetches url with OkHttp through the SOCKS port; names resolve at the exit. */
    fun fetch(url: String): String {
        check(socksPort != 0) { "start() first" }
        val http = OkHttpClient.Builder()
            .proxy(Proxy(Proxy.Type.SOCKS, InetSocketAddress("127.0.0.1", socksPort)))
            .connectTimeout(2, TimeUnit.MINUTES)
            .readTimeout(2, TimeUnit.MINUTES)
            .build()
        http.newCall(Request.Builder().url(url).build()).execute().use { response ->
            val body = response.body?.string().orEmpty()
            return "HTTP ${response.code}\n\n${body.take(4000)}"
        }
    }

    /**
     * Sends request on a direct stream to host:port and returns the reply,
     * read in bounded pieces (at most 16 KiB cross the bridge per call).
     */
    fun exchange(host: String, port: Long, request: ByteArray): ByteArray {
        val c = client ?: error("start() first")
        val stream: Stream = c.dial(host, port)
        try {
            stream.setDeadline(60_000)
            stream.write(request)
            val reply = ByteArrayOutputStream()
            while (true) {
                val chunk = try {
                    stream.read(16L shl 10)
                } catch (e: Exception) {
                    if (Onionlite.errorKind(e.message) == Onionlite.KindEOF) break
                    throw e
                }
                reply.write(chunk)
            }
            return reply.toByteArray()
        } finally {
            stream.close()
        }
    }

    /** Android's onTrimMemory: critical frees the Go heap's spare pages too. */
    fun trimMemory(critical: Boolean): Long =
        client?.trimMemory(if (critical) Onionlite.TrimCritical else Onionlite.TrimModerate) ?: 0L

    /** Background: no preemptive circuits, no directory refreshes. */
    fun setBackground(background: Boolean) {
        client?.setDormant(background)
    }

    fun networkChanged() {
        client?.networkChanged()
    }

    fun statsJSON(): String = client?.statsJSON() ?: "{}"

    fun stop() {
        val c = client ?: return
        client = null
        socksPort = 0
        try {
            c.stop()
        } catch (e: Exception) {
            // Already stopped: kind "closed".
            if (Onionlite.errorKind(e.message) != Onionlite.KindClosed) throw e
        }
    }

    companion object {
        /** Explains an exception from the binding by its stable kind. */
        fun describe(e: Exception): String = when (Onionlite.errorKind(e.message)) {
            Onionlite.KindClockSkew -> "The device clock is wrong; fix the date and time."
            Onionlite.KindBootstrapFailed -> "Could not reach the Tor network."
            Onionlite.KindTimeout -> "Timed out."
            Onionlite.KindExitRefused -> "The exit relay could not reach the site."
            else -> e.message ?: e.toString()
        }
    }
}
