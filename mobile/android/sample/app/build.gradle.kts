plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.onionlite.sample"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.onionlite.sample"
        minSdk = 21 // as the .aar (gomobile bind -androidapi 21)
        targetSdk = 34
        versionCode = 1
        versionName = "0.1"
    }
    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    // Built by ../../build.sh (gomobile bind); not checked in.
    implementation(files("libs/onionlite.aar"))
    implementation("com.squareup.okhttp3:okhttp:4.12.0")
}
