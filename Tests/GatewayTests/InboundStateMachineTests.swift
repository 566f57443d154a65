// A published port's client connection driven through every path without a socket or a stack:
// the guest's answer, both half-closes, resets both ways, backpressure, a slow client, unpublish.
import CGatewayShims
import Glibc
import NetStack
import SystemPackage
import Testing

@testable import Gateway

private typealias Machine = InboundStateMachine
private let readable = EPOLLIN.rawValue
private let writable = EPOLLOUT.rawValue

/// A machine whose guest answered, with the client watched for reading.
private func relaying() -> Machine {
    var m = Machine()
    #expect(m.interestChange() == .register(0))
    #expect(m.stackEvent(.established, unreadBytes: 0) == .established)
    #expect(m.interestChange() == .modify(readable))
    return m
}

@Suite struct InboundStateMachineTests {
    @Test func clientBytesWaitUntilTheGuestAnswers() {
        var m = Machine()
        #expect(m.interestChange() == .register(0), "errors only")
        #expect(m.socketReadable() == .none)
        #expect(m.stackEvent(.established, unreadBytes: 0) == .established)
        #expect(m.isEstablished)
        #expect(m.interestChange() == .modify(readable))
        #expect(m.timerFired() == .none, "the guest answered in time")
    }

    @Test func guestBytesGoStraightToTheClientOnlyWhileNothingHoldsThem() {
        var m = Machine()
        #expect(!m.takesGuestBytesDirectly, "not before the guest answered")
        m = relaying()
        #expect(m.takesGuestBytesDirectly)
        #expect(m.stackEvent(.readable, unreadBytes: 100) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(!m.takesGuestBytesDirectly, "a full socket: the bytes queue in the ring")
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.takesGuestBytesDirectly)
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(!m.takesGuestBytesDirectly, "nothing comes after the guest's FIN")
    }

    @Test func guestRefusalOrSilenceResetsTheClient() {
        var refused = Machine()
        #expect(refused.stackEvent(.closed, unreadBytes: 0) == .refuseClient(.guestRefused, abortGuest: false))
        var silent = Machine()
        #expect(silent.timerFired() == .refuseClient(.guestTimedOut, abortGuest: true))
        #expect(silent.stackEvent(.established, unreadBytes: 0) == .none)
    }

    @Test func clientGoneBeforeTheGuestAnswersResetsBoth() {
        var m = Machine()
        #expect(m.socketEvent(hangUp: true, error: nil) == .resetBoth(wasEstablished: false))
        var n = Machine()
        #expect(n.socketEvent(hangUp: false, error: ECONNRESET) == .resetBoth(wasEstablished: false))
    }

    @Test func clientEOFFirstThenTheGuestsAnswerAndFIN() {
        var m = relaying()
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeClient: false))
        #expect(m.interestChange() == .modify(0))
        #expect(m.stackEvent(.writable, unreadBytes: 0) == .none, "nothing more to read")
        #expect(m.stackEvent(.readable, unreadBytes: 0) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(m.pushStartsComplete(readClosed: true, connectionLive: true))
        #expect(m.pushed(.emptied(complete: true)) == .closeClient(shutWriteFirst: true))
        #expect(m.state == .done)
    }

    @Test func guestFINFirstShutsTheClientsReadSideAndItsBytesStillGoIn() {
        var m = relaying()
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(m.pushed(.emptied(complete: true)) == .shutClientWrite)
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.socketEmpty) == .none)
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeClient: true))
        #expect(m.state == .done)
    }

    @Test func guestFINOnALostStreamDoesNotShutCleanly() {
        var m = relaying()
        #expect(!m.pushStartsComplete(readClosed: true, connectionLive: false))
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.stackEvent(.closed, unreadBytes: 0) == .resetClient)
    }

    @Test func guestResetResetsTheClient() {
        var m = relaying()
        #expect(m.stackEvent(.closed, unreadBytes: 0) == .resetClient)
        #expect(m.socketReadable() == .none)
    }

    @Test func bothFINsAndTheStacksEndCloseTheClientGracefully() {
        var m = relaying()
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(m.pushed(.emptied(complete: true)) == .shutClientWrite)
        // The client's EOF and the connection's end can be seen in either order.
        var n = m
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeClient: true))
        #expect(n.stackEvent(.closed, unreadBytes: 0) == .resetClient, "the client's FIN never came")
    }

    @Test func clientResetOrSocketErrorResetsBoth() {
        var m = relaying()
        #expect(m.socketEvent(hangUp: false, error: ECONNRESET) == .resetBoth(wasEstablished: true))
        var n = relaying()
        #expect(n.pulled(.failed(.connectionReset)) == .resetBoth(wasEstablished: true))
        var o = relaying()
        #expect(o.pushed(.failed(.brokenPipe)) == .resetBoth(wasEstablished: true))
        var p = relaying()
        #expect(p.socketEvent(hangUp: false, error: 0) == .none, "EPOLLERR with nothing pending")
    }

    @Test func fullStackStopsReadingTheClientUntilWritable() {
        var m = relaying()
        #expect(m.pulled(.stackFull) == .none)
        #expect(m.interestChange() == .modify(0))
        #expect(m.stackEvent(.writable, unreadBytes: 0) == .pull)
        #expect(m.pulled(.socketEmpty) == .none)
        #expect(m.interestChange() == .modify(readable))
    }

    @Test func fullClientSocketWaitsForEPOLLOUT() {
        var m = relaying()
        #expect(m.stackEvent(.readable, unreadBytes: 0) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.interestChange() == .modify(readable | writable))
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.interestChange() == .modify(readable))
    }

    @Test func slowClientGetsTheGuestsLastBytesAfterTheConnectionEnds() {
        var m = relaying()
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeClient: false))
        #expect(m.stackEvent(.peerClosed, unreadBytes: 0) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.stackEvent(.closed, unreadBytes: 4096) == .drain)
        #expect(m.interestChange() == .modify(writable))
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.emptied(complete: true)) == .closeClient(shutWriteFirst: true))
    }

    @Test func drainingThatOutlastsTheFlushTimeoutOrEndsCutOffResetsBoth() {
        var m = relaying()
        #expect(m.stackEvent(.closed, unreadBytes: 10) == .drain)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.timerFired() == .resetBoth(wasEstablished: true))
        var n = relaying()
        #expect(n.stackEvent(.closed, unreadBytes: 10) == .drain)
        #expect(n.pushed(.emptied(complete: false)) == .resetBoth(wasEstablished: true), "no FIN after a cut-off stream")
    }

    @Test func hungUpClientWithNothingToWatchLeavesTheLoop() {
        var m = relaying()
        #expect(m.socketEvent(hangUp: true, error: nil) == .none)
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeClient: false))
        #expect(m.interestChange() == .unregister)
        #expect(m.interestChange() == nil)
        #expect(m.stackEvent(.readable, unreadBytes: 0) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.interestChange() == .register(writable), "back in the loop to write")
        #expect(m.watchFailed() == .resetBoth(wasEstablished: true))
    }

    @Test func unpublishResetsBoth() {
        var m = relaying()
        #expect(m.abort() == .abortBoth(abortGuest: true))
        #expect(m.abort() == .abortBoth(abortGuest: false))
    }
}
