import SwiftUI

/// Bootstrap progress, then the page fetched through the SOCKS port.
struct ContentView: View {
    @ObservedObject var model: TorModel

    var body: some View {
        VStack(alignment: .leading, spacing: 12) {
            ProgressView(value: model.percent, total: 100)
            Text("\(model.phase) \(Int(model.percent))%").font(.headline)
            Text(model.status).font(.footnote).foregroundColor(.secondary)
            ScrollView {
                Text(model.page)
                    .font(.system(.footnote, design: .monospaced))
                    .frame(maxWidth: .infinity, alignment: .leading)
            }
        }
        .padding()
    }
}
