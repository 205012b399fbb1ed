document.querySelector("#app p")!.textContent = "The volunteer page is being built.";
