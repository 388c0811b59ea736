//! A [`Transport`] that records requests and plays back scripted answers, so
//! the code deciding what to send (here and in the plugins) is unit-tested
//! without root or a kernel.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use rtnetlink::packet_route::RouteNetlinkMessage;

use super::transport::{Fault, Request, Transport};
use super::Handle;

/// The answer to one request: reply messages, or a fault.
pub type Reply = Result<Vec<RouteNetlinkMessage>, Fault>;

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    replies: VecDeque<Reply>,
}

/// Records every request; answers from a queue, then with an empty success.
/// Clones share the same record, so a test keeps one while the handle owns another.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Rc<RefCell<Inner>>,
}

impl Recorder {
    /// An empty recorder that acknowledges everything.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// A [`Handle`] that sends through this recorder.
    pub fn handle(&self) -> Handle {
        Handle::with_transport(Box::new(self.clone()), None)
    }

    /// Queues the answer to the next unanswered request.
    pub fn reply(&self, reply: Reply) -> &Recorder {
        self.inner.borrow_mut().replies.push_back(reply);
        self
    }

    /// Queues a kernel error (positive errno) as the next answer.
    pub fn fail(&self, errno: i32) -> &Recorder {
        self.reply(Err(Fault::Errno(errno)))
    }

    /// Every request sent so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.borrow().requests.clone()
    }
}

impl Transport for Recorder {
    fn request(&self, req: Request) -> Reply {
        let mut inner = self.inner.borrow_mut();
        inner.requests.push(req);
        inner.replies.pop_front().unwrap_or(Ok(Vec::new()))
    }
}
