import SwiftUI

@main
struct SampleApp: App {
    @StateObject private var model = TorModel()
    @Environment(\.scenePhase) private var scenePhase

    var body: some Scene {
        WindowGroup {
            ContentView(model: model)
                .onAppear { model.start() }
        }
        .onChange(of: scenePhase) { phase in
            // Background: no preemptive circuits, no directory refreshes.
            model.setBackground(phase != .active)
        }
    }
}
