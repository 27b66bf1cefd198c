// A stand-in for Android's Context on the desktop JVM: gobind's go.Seq
// refers to it only in setContext, which the binding test never calls.
package android.content;

public class Context {}
