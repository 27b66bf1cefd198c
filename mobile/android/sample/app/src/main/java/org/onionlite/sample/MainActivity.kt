package org.onionlite.sample

import android.app.Activity
import android.content.ComponentCallbacks2
import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.os.Build
import android.os.Bundle
import android.util.Log
import android.widget.LinearLayout
import android.widget.ProgressBar
import android.widget.ScrollView
import android.widget.TextView

/**
 * A minimal screen: bootstrap progress, then a page fetched through the
 * client's SOCKS port. The views are built in code to keep the sample to
 * two files.
 */
class MainActivity : Activity() {
    private lateinit var tor: TorController
    private lateinit var bar: ProgressBar
    private lateinit var status: TextView
    private lateinit var page: TextView
    private var networkCallback: ConnectivityManager.NetworkCallback? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        bar = ProgressBar(this, null, android.R.attr.progressBarStyleHorizontal).apply { max = 100 }
        status = TextView(this).apply { text = "starting" }
        page = TextView(this).apply { setTextIsSelectable(true) }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(32, 32, 32, 32)
            addView(bar)
            addView(status)
            addView(ScrollView(this@MainActivity).apply { addView(page) })
        })

        tor = TorController(noBackupFilesDir)
        Thread({
            try {
                val socks = tor.start(object : TorController.Events {
                    override fun onProgress(phase: String, percent: Long, dirBytes: Long) {
                        runOnUiThread {
                            bar.progress = percent.toInt()
                            status.text = "$phase $percent% (${dirBytes / 1024} KiB of directory)"
                        }
                    }

                    override fun onLog(level: Long, message: String) {
                        Log.i("onionlite", message)
                    }
                })
                runOnUiThread { status.text = "ready; SOCKS5 on $socks" }
                val text = tor.fetch(PAGE)
                runOnUiThread {
                    page.text = text
                    status.text = "fetched $PAGE through $socks\n${tor.statsJSON()}"
                }
            } catch (e: Exception) {
                runOnUiThread { status.text = TorController.describe(e) }
            }
        }, "tor-start").start()

        if (Build.VERSION.SDK_INT >= 24) {
            val cm = getSystemService(Context.CONNECTIVITY_SERVICE) as ConnectivityManager
            val cb = object : ConnectivityManager.NetworkCallback() {
                private var current: Network? = null
                override fun onAvailable(network: Network) {
                    // The first callback reports the network we started on.
                    if (current != null && current != network) tor.networkChanged()
                    current = network
                }
            }
            cm.registerDefaultNetworkCallback(cb)
            networkCallback = cb
        }
    }

    override fun onStart() {
        super.onStart()
        tor.setBackground(false)
    }

    override fun onStop() {
        tor.setBackground(true)
        super.onStop()
    }

    override fun onTrimMemory(level: Int) {
        super.onTrimMemory(level)
        if (level >= ComponentCallbacks2.TRIM_MEMORY_RUNNING_LOW) {
            tor.trimMemory(
                level >= ComponentCallbacks2.TRIM_MEMORY_COMPLETE ||
                    level == ComponentCallbacks2.TRIM_MEMORY_RUNNING_CRITICAL
            )
        }
    }

    override fun onDestroy() {
        networkCallback?.let {
            (getSystemService(Context.CONNECTIVITY_SERVICE) as ConnectivityManager).unregisterNetworkCallback(it)
        }
        // One client per process, tied to this screen in the sample (the
        // manifest keeps rotations from recreating it). stop() can wait for
        // connections to close: keep it off the main thread.
        if (isFinishing) Thread({ tor.stop() }, "tor-stop").start()
        super.onDestroy()
    }

    companion object {
        const val PAGE = "https://check.torproject.org/api/ip"
    }
}
